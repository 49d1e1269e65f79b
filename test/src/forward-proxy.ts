import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { type PrepareRequestFunctionOpts, Server } from 'proxy-chain';

/** A forward proxy on loopback (proxy-chain, a maintained proxy server), counting what it forwarded. */
export interface ForwardProxy {
  /** `http://127.0.0.1:<port>` (its listen address), with `user:password@` when it asks for credentials. */
  readonly url: string;
  readonly port: number;
  /** The target URLs it forwarded (plain HTTP) or tunnelled to (`host:port` for CONNECT), in order. */
  readonly forwarded: string[];
  /** The headers of each plain-HTTP request it forwarded, keyed by its URL. */
  readonly headers: Map<string, Record<string, string | string[] | undefined>>;
  /** Requests refused for lacking the credentials. */
  refused: number;
  stop(): Promise<void>;
}

export interface ForwardProxyOptions {
  /** Credentials it asks of every client (HTTP 407 without them); none by default. */
  username?: string;
  password?: string;
  /**
   * The loopback address (`127.0.0.2`) it connects to sites from: its exit address, the one a site
   * sees and may block. Default: the system's choice.
   */
  exitAddress?: string;
  /** The loopback address it listens on (`127.0.0.2`, an address a tenant may not list). Default 127.0.0.1. */
  listenAddress?: string;
  /** Speak TLS to clients (an `https://` proxy) with this key and certificate (PEM files). */
  tls?: { keyFile: string; certFile: string };
}

export async function startForwardProxy(options: ForwardProxyOptions = {}): Promise<ForwardProxy> {
  const { exitAddress, listenAddress = '127.0.0.1' } = options;
  const credentials =
    options.username === undefined ? undefined : { username: options.username, password: options.password ?? '' };
  const forwarded: string[] = [];
  const headers = new Map<string, Record<string, string | string[] | undefined>>();
  const proxy: { refused: number } = { refused: 0 };
  const common = {
    host: listenAddress,
    port: 0,
    prepareRequestFunction: ({ request, username, password, hostname, port, isHttp }: PrepareRequestFunctionOpts) => {
      if (credentials !== undefined && (username !== credentials.username || password !== credentials.password)) {
        proxy.refused++;
        return { requestAuthentication: true };
      }
      forwarded.push(isHttp ? String(request.url) : `${hostname}:${port}`);
      if (isHttp) headers.set(String(request.url), { ...request.headers });
      return exitAddress === undefined ? {} : { localAddress: exitAddress };
    },
  };
  const { tls } = options;
  const server =
    tls === undefined
      ? new Server(common)
      : new Server({
          ...common,
          serverType: 'https',
          httpsOptions: { key: readFileSync(tls.keyFile), cert: readFileSync(tls.certFile) },
        });
  await server.listen();
  const port = (server.server.address() as AddressInfo).port;
  const auth = credentials === undefined ? '' : `${credentials.username}:${credentials.password}@`;
  return Object.assign(proxy, {
    url: `${options.tls === undefined ? 'http' : 'https'}://${auth}${listenAddress}:${port}`,
    port,
    forwarded,
    headers,
    stop: () => server.close(true),
  });
}
