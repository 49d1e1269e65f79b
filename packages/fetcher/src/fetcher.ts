import { type ClientRequest, Agent as HttpAgent, type IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { FetchConfig, HttpMethod, TenantConfig } from '@crawlfleet/core';
import { type Got, got, type OptionsInit } from 'got';
import { AddressNotAllowedError, AddressPolicy } from './address-policy.js';
import { guardedLookup } from './guarded-lookup.js';
import { proxyAgents } from './proxy-agents.js';
import { type TlsFamily, tlsOptions } from './tls-profiles.js';

export interface FetchRequest {
  url: string;
  method: HttpMethod;
  headers?: Record<string, string> | undefined;
  body?: string | undefined;
  /** The session's cookie jar (got's promise interface); none for a job without a session. */
  cookieJar?:
    | { getCookieString(url: string): Promise<string>; setCookie(raw: string, url: string): Promise<unknown> }
    | undefined;
  /** Asked before each redirect is followed; what it throws ends the fetch (robots.txt, say). */
  beforeHop?: ((url: URL) => Promise<void>) | undefined;
  /** What a browser page takes of the session besides the jar's Cookie header (render jobs). */
  session?: PageSession | undefined;
}

/** A cookie as a session's jar holds it (tough-cookie's `Cookie`). */
export interface SessionCookie {
  key: string;
  value: string;
  domain: string | null;
  path: string | null;
  hostOnly: boolean | null;
  secure: boolean;
  httpOnly: boolean;
  sameSite?: string | undefined;
  /** When it expires, in ms since the epoch; undefined for a session cookie, Infinity for never. */
  expiryTime(): number | undefined;
}

/** One origin's localStorage, as a browser lists it. */
export type OriginStorage = ReadonlyArray<{ name: string; value: string }>;

/**
 * What a browser page takes of a session and gives back, beyond the Cookie header: every cookie
 * of the jar (put into the browser before the page loads; what the page changed goes back
 * through the jar's `setCookie`), and the localStorage the session keeps per origin.
 */
export interface PageSession {
  cookies(): Promise<readonly SessionCookie[]>;
  readonly storage: ReadonlyMap<string, OriginStorage>;
  setStorage(origin: string, entries: OriginStorage | undefined): void;
}

/**
 * A page a browser rendered, still open: a handler may work with it (`page` is Playwright's).
 * `close` takes what the page changed since (cookies, storage) back into the session and closes
 * its browser context; it must be called once the job is done with the page, whatever happened.
 */
export interface RenderedPage {
  readonly page: unknown;
  close(): Promise<void>;
}
/**
 * A forward proxy a request goes through. `url` may hold credentials and is never logged;
 * `id` (`scheme://host:port`) names it in logs, metrics and the session's profile.
 */
export interface ProxyEndpoint {
  id: string;
  url: string;
}

/**
 * The tenant a request is made for (its name and proxy key the connection pool, its config the
 * policy) and the identity it is made as: the proxy every request of a session goes through, on
 * every hop, logins included.
 */
export interface FetchTenant {
  name: string;
  config: TenantConfig;
  /** Sent through this proxy (CONNECT for https targets); none: directly. */
  proxy?: ProxyEndpoint | undefined;
  /** The TLS handshake https requests offer (`tls-profiles.ts`); none: Node's own. TLS 1.2 at least, always. */
  tls?: TlsFamily | undefined;
}

/**
 * What fetches a page as a session (its jar, headers and, later, its proxy): the job path, robots.txt
 * and logins take this, so a browser or another client can stand in for `Fetcher`.
 */
export interface PageFetcher {
  fetch(request: FetchRequest, tenant: FetchTenant): Promise<FetchedPage>;
}

/** A response that arrived, whatever its status; the caller classifies it. */
export interface FetchedPage {
  url: string;
  finalUrl: string;
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** Bytes of the (decompressed) body. */
  bodyBytes: number;
  redirects: number;
  durationMs: number;
  /** What the last hop's TLS handshake agreed on; none for plain http. */
  tls?: NegotiatedTls | undefined;
  /** Set when a browser rendered the page (`body` is the rendered HTML): the page, still open. */
  rendered?: RenderedPage | undefined;
  /** A screenshot of the rendered page (PNG), when `render.screenshot` asks for one. */
  screenshot?: Buffer | undefined;
}

/** A TLS connection's version (`TLSv1.3`) and cipher suite (its IANA name). */
export interface NegotiatedTls {
  version: string;
  cipher: string;
}

/** What the socket under a response agreed on, when it is TLS. */
function negotiated(socket: unknown): NegotiatedTls | undefined {
  const tls = socket as Partial<TLSSocket> | null | undefined;
  if (typeof tls?.getProtocol !== 'function' || typeof tls.getCipher !== 'function') return undefined;
  const version = tls.getProtocol();
  const cipher = tls.getCipher();
  return version === null ? undefined : { version, cipher: cipher.standardName ?? cipher.name };
}

/** Refuses a proxy at an address the tenant may not reach (a literal; names are checked when they resolve). */
export function checkProxyAddress(policy: AddressPolicy, proxyId: string): void {
  const host = new URL(proxyId).hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) === 0 || policy.isHostListed(host)) return;
  const why = policy.refusal(host);
  if (why !== undefined)
    throw new AddressNotAllowedError(
      `refused to use the proxy ${proxyId} at ${host} (${why}): list it in the tenant's allowHosts to allow it`,
    );
}

/** Resolves a target's name here and refuses it as a direct request would (`guardedLookup`). */
export function checkName(policy: AddressPolicy, host: string): Promise<void> {
  const lookup = guardedLookup(policy);
  return new Promise((resolve, reject) =>
    lookup(host, { all: true }, (error: NodeJS.ErrnoException | null) => (error ? reject(error) : resolve())),
  );
}

/** Thrown when a redirect to another origin would carry the request body there. */
export class UnsafeRedirectError extends Error {
  override readonly name = 'UnsafeRedirectError';
  readonly code = 'ERR_UNSAFE_REDIRECT';
}

/** Headers that may follow a redirect to another origin; anything else may be a credential. */
const CROSS_ORIGIN_HEADERS = new Set(['user-agent', 'accept', 'accept-language', 'accept-encoding']);

/**
 * Thrown when a fetch (every hop of it) takes longer than `timeoutMs` from the moment its first
 * request had a socket. Time spent waiting for a free socket of the tenant's pool is not the
 * target's fault, so it does not count.
 */
export class FetchTimeoutError extends Error {
  override readonly name = 'TimeoutError';
  readonly code = 'ETIMEDOUT';
}

/** Thrown when a body grows past `maxBodyBytes`; the download stops there. */
export class BodyTooLargeError extends Error {
  override readonly name = 'BodyTooLargeError';
  readonly code = 'ERR_BODY_TOO_LARGE';
}

interface TenantPool {
  policy: AddressPolicy;
  http: HttpAgent;
  https: HttpAgent;
  /** got with everything that is the same for each of the tenant's requests, set once. */
  client: Got;
}

/**
 * Fetches pages with got: a whole-fetch deadline (from the first socket on) and a connect timeout, a redirect limit, a body cap
 * enforced while streaming, keep-alive sockets, and address safety on every hop. got's own
 * retries are off: retries belong to the queue, where they survive a worker crash.
 * Each tenant has its own socket pool, so a socket one tenant was allowed to open to a private
 * address is never reused by a tenant that is not.
 */
export class Fetcher implements PageFetcher {
  private readonly pools = new Map<string, TenantPool>();
  /** Requests sent, and how many went over a kept-alive socket (`connection_reuse_ratio`). */
  readonly connections = { requests: 0, reused: 0 };

  constructor(private readonly config: FetchConfig) {}

  /**
   * The tenant's pool for this proxy (or for direct requests): a socket never carries two
   * identities, nor two tenants' policies.
   */
  private pool(tenant: FetchTenant): TenantPool {
    const key = tenant.proxy === undefined ? tenant.name : `${tenant.name}\u0000${tenant.proxy.id}`;
    let pool = this.pools.get(key);
    if (pool === undefined) {
      const policy = new AddressPolicy(tenant.config.allowHosts);
      const agentOptions = { keepAlive: true, maxSockets: this.config.maxSocketsPerHost, scheduling: 'lifo' as const };
      // The proxy resolves target names; IP literals are still checked here (beforeRequest). The
      // proxy itself is a host like any other: a private one must be listed in allowHosts.
      if (tenant.proxy !== undefined) checkProxyAddress(policy, tenant.proxy.id);
      const { http, https } =
        tenant.proxy === undefined
          ? { http: new HttpAgent(agentOptions), https: new HttpsAgent(agentOptions) }
          : proxyAgents(tenant.proxy.url, { ...agentOptions, lookup: guardedLookup(policy) });
      pool = { policy, http, https, client: got.extend(this.clientOptions(tenant, policy, http, https)) };
      this.pools.set(key, pool);
    }
    return pool;
  }

  /** What every request of a tenant shares: merged into got's defaults once, not per request. */
  private clientOptions(tenant: FetchTenant, policy: AddressPolicy, http: HttpAgent, https: HttpAgent): OptionsInit {
    const resolveLocally = tenant.proxy !== undefined && tenant.config.proxy?.resolveLocally === true;
    return {
      headers: { 'user-agent': tenant.config.userAgent ?? this.config.userAgent, ...tenant.config.headers },
      // The whole-fetch deadline is ours (below): it starts when a socket is assigned.
      // got's whole-request timeout stays as an outer bound, so no fetch can wait forever.
      timeout: { connect: this.config.connectTimeoutMs, request: 3 * this.config.timeoutMs },
      https: tlsOptions('node'),
      followRedirect: true,
      maxRedirects: this.config.maxRedirects,
      // 301/302 after a POST continue as GET without the body, as browsers do.
      methodRewriting: true,
      throwHttpErrors: false,
      retry: { limit: 0 },
      decompress: true,
      // A proxy agent for https targets is an http.Agent that tunnels (CONNECT) and then speaks TLS.
      agent: { http, https: https as HttpsAgent },
      dnsLookup: guardedLookup(policy),
      hooks: {
        // IP literals never reach the DNS lookup, so they are checked here, on every hop; through
        // a proxy that resolves names itself, names too when the tenant asks for it.
        beforeRequest: [
          async (options) => {
            const host = (options.url as URL).hostname.replace(/^\[|\]$/g, '');
            if (isIP(host) !== 0) policy.check(host, host);
            else if (resolveLocally) await checkName(policy, host);
          },
        ],
        // got strips only host, cookie and authorization, and ignores the scheme: a redirect to
        // another origin keeps nothing but plain negotiation headers (the jar adds that
        // origin's own cookies), and never takes the request body along.
        beforeRedirect: [
          async (next) => {
            const check = (next.context as { beforeHop?: FetchRequest['beforeHop'] }).beforeHop;
            if (check !== undefined) await check(next.url as URL);
          },
          (next, response) => {
            if (new URL(response.url).origin === (next.url as URL).origin) return;
            if (next.body !== undefined && next.body !== '') {
              throw new UnsafeRedirectError(
                `refused to carry the request body in a redirect to ${(next.url as URL).origin}`,
              );
            }
            for (const name of Object.keys(next.headers))
              if (!CROSS_ORIGIN_HEADERS.has(name)) delete next.headers[name];
          },
        ],
      },
    };
  }

  fetch(request: FetchRequest, tenant: FetchTenant): Promise<FetchedPage> {
    const pool = this.pool(tenant);
    const started = performance.now();
    const maxBodyBytes = this.config.maxBodyBytes;
    const options: OptionsInit & { isStream?: true } = {
      method: request.method,
      headers: request.headers,
      // got's stream waits for the caller to end a request that may carry a body; give it one.
      body: request.body ?? (request.method === 'GET' || request.method === 'HEAD' ? undefined : ''),
      cookieJar: request.cookieJar,
      // Node's own handshake (TLS 1.2 and up) is the client's default: nothing to merge per request.
      ...(tenant.tls === undefined || tenant.tls === 'node' ? {} : { https: tlsOptions(tenant.tls) }),
      ...(request.beforeHop === undefined ? {} : { context: { beforeHop: request.beforeHop } }),
    };
    return new Promise<FetchedPage>((resolve, reject) => {
      const stream = pool.client.stream(request.url, options);
      const chunks: Buffer[] = [];
      let size = 0;
      let tooLarge: BodyTooLargeError | undefined;
      let response: { statusCode: number; headers: IncomingHttpHeaders; url: string; redirectUrls: URL[] } | undefined;
      let tls: NegotiatedTls | undefined;
      const refuse = (bytes: number) => {
        tooLarge = new BodyTooLargeError(`response body exceeds ${maxBodyBytes} bytes (got at least ${bytes})`);
        stream.destroy(tooLarge);
      };
      let deadline: NodeJS.Timeout | undefined;
      const startDeadline = () => {
        deadline ??= setTimeout(() => {
          stream.destroy(new FetchTimeoutError(`no complete response within ${this.config.timeoutMs} ms`));
        }, this.config.timeoutMs);
      };
      stream.on('request', (req: ClientRequest) => {
        this.connections.requests++;
        if (req.reusedSocket) this.connections.reused++;
        if (req.socket) startDeadline();
        else req.once('socket', startDeadline);
      });

      stream.on('response', (res) => {
        response = res;
        // Read now: a kept-alive socket goes back to the pool once the body ends.
        tls = negotiated(res.socket);
        const declared = Number(res.headers['content-length']);
        if (declared > maxBodyBytes) refuse(declared);
      });
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBodyBytes) refuse(size);
        else chunks.push(chunk);
      });
      stream.once('error', (error) => {
        clearTimeout(deadline);
        reject(tooLarge ?? error);
      });
      stream.once('end', () => {
        clearTimeout(deadline);
        if (response === undefined) return reject(new Error('stream ended without a response'));
        resolve({
          url: request.url,
          finalUrl: response.url,
          status: response.statusCode,
          headers: response.headers,
          body: Buffer.concat(chunks, size),
          bodyBytes: size,
          redirects: response.redirectUrls.length,
          durationMs: performance.now() - started,
          tls,
        });
      });
    });
  }

  /** Closes every pooled socket. */
  close(): void {
    for (const pool of this.pools.values()) {
      pool.http.destroy();
      pool.https.destroy();
    }
    this.pools.clear();
  }
}
