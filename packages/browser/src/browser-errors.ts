import type { EgressLease } from './egress-guard.js';

/** Chromium's network errors (`net::ERR_*`) as the codes `classifyError` knows from Node and got. */
const NET_ERRORS: ReadonlyArray<[RegExp, string]> = [
  [/ERR_NAME_NOT_RESOLVED|ERR_NAME_RESOLUTION_FAILED/, 'ENOTFOUND'],
  [/ERR_CONNECTION_REFUSED|ERR_TUNNEL_CONNECTION_FAILED|ERR_PROXY_CONNECTION_FAILED/, 'ECONNREFUSED'],
  [/ERR_CONNECTION_RESET|ERR_CONNECTION_CLOSED|ERR_EMPTY_RESPONSE|ERR_CONNECTION_ABORTED/, 'ECONNRESET'],
  [/ERR_TIMED_OUT|ERR_CONNECTION_TIMED_OUT/, 'ETIMEDOUT'],
  [/ERR_ADDRESS_UNREACHABLE|ERR_INTERNET_DISCONNECTED/, 'EHOSTUNREACH'],
  [/ERR_TOO_MANY_REDIRECTS/, 'ERR_TOO_MANY_REDIRECTS'],
  [/ERR_CERT_|ERR_BAD_SSL_CLIENT_AUTH_CERT/, 'DEPTH_ZERO_SELF_SIGNED_CERT'],
  [/ERR_INVALID_URL|ERR_UNSAFE_PORT|ERR_INVALID_REDIRECT/, 'ERR_INVALID_URL'],
  [/Download is starting/, 'ERR_DOWNLOAD_REFUSED'],
  [/has been closed|Browser closed|Target crashed|Page crashed|browser has disconnected/i, 'ERR_BROWSER_CRASHED'],
];

/**
 * Why a render failed, as an error the job path classifies like an HTTP job's: what the egress
 * guard refused (an address, robots.txt) first, since the browser only says its tunnel failed;
 * Chromium's network errors by their Node equivalents; a TLS handshake with no common version as
 * `tls_version`; Playwright's timeouts as timeouts; a dead browser as `browser_crashed`.
 */
export function browserError(error: unknown, lease: EgressLease): Error {
  const refused = lease.refused[0];
  if (refused !== undefined) return refused;
  const thrown = error instanceof Error ? error : new Error(String(error));
  if ((thrown as { code?: unknown }).code !== undefined) return thrown;
  const message = thrown.message.split('\n')[0] ?? thrown.message;
  if (thrown.name === 'TimeoutError') return Object.assign(new Error(message), { name: 'TimeoutError' });
  if (/ERR_SSL_VERSION_OR_CIPHER_MISMATCH|ERR_SSL_PROTOCOL_ERROR/.test(message))
    return Object.assign(new Error(`${message} (unsupported protocol)`), { code: 'EPROTO' });
  for (const [pattern, code] of NET_ERRORS)
    if (pattern.test(message)) return Object.assign(new Error(message), { code });
  return Object.assign(new Error(message), { cause: thrown });
}
