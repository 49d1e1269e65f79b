import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SecureVersion, TLSSocket } from 'node:tls';
import { CIPHER_SUITES, getExtensionData, trackClientHellos } from 'read-tls-client-hello';

/** One request as the https site saw it, with the ClientHello of its connection. */
export interface TlsHit {
  path: string;
  userAgent: string | undefined;
  /** Cipher suites offered, in order, by IANA name. */
  ciphers: string[];
  /** Supported groups offered (IANA numbers: 29 x25519, 23 secp256r1, ...). */
  groups: number[];
  ja3: string;
  /** What the handshake agreed on. */
  version: string | null;
  cipher: string;
}

export interface TlsSite {
  /** `https://127.0.0.1:PORT` */
  url: string;
  /** The certificate a client must trust (NODE_EXTRA_CA_CERTS), for 127.0.0.1, and its key. */
  caFile: string;
  keyFile: string;
  hits: TlsHit[];
  close(): Promise<void>;
}

/**
 * An https site on 127.0.0.1 with a certificate made for this run (trusted by whoever is given
 * `caFile`), reading each connection's ClientHello with HTTP Toolkit's `read-tls-client-hello`:
 * what a client offered (cipher suites, groups, JA3) as a site's fingerprinting sees it. Each page
 * is `<html><body>secure PATH</body></html>`. `versions` narrows what it speaks (an old site).
 */
export async function startTlsSite(
  versions: { minVersion?: SecureVersion; maxVersion?: SecureVersion } = {},
): Promise<TlsSite> {
  const dir = mkdtempSync(join(tmpdir(), 'crawlfleet-tls-site-'));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ],
    { stdio: 'ignore' },
  );
  const hits: TlsHit[] = [];
  const server = createServer(
    {
      key: readFileSync(join(dir, 'key.pem')),
      cert: readFileSync(join(dir, 'cert.pem')),
      ...versions,
      // An old site: OpenSSL 3 speaks TLS 1.0/1.1 only at security level 0.
      ...(versions.maxVersion === 'TLSv1' || versions.maxVersion === 'TLSv1.1'
        ? { ciphers: 'DEFAULT@SECLEVEL=0' }
        : {}),
    },
    (req, res) => {
      const socket = req.socket as TLSSocket;
      const hello = socket.tlsClientHello;
      hits.push({
        path: req.url ?? '/',
        userAgent: req.headers['user-agent'],
        ciphers: (hello?.cipherSuites ?? []).map((id) => CIPHER_SUITES[id] ?? `0x${id.toString(16)}`),
        groups: hello === undefined ? [] : (getExtensionData(hello, 0x000a)?.groups ?? []),
        ja3: hello?.ja3 ?? '',
        version: socket.getProtocol(),
        cipher: socket.getCipher().standardName,
      });
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<html><body>secure ${req.url}</body></html>`);
    },
  );
  trackClientHellos(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    caFile: join(dir, 'cert.pem'),
    keyFile: join(dir, 'key.pem'),
    hits,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
