import { randomBytes } from 'node:crypto';
import { isIP, type LookupFunction } from 'node:net';
import {
  AddressNotAllowedError,
  type AddressPolicy,
  checkName,
  checkProxyAddress,
  guardedLookup,
  type ProxyEndpoint,
} from '@crawlfleet/fetcher';
import type { RequestError, Server } from 'proxy-chain';

/** Marks the guard's own refusal, which a browser shows as the page's answer over plain http. */
export const REFUSED_HEADER = 'x-crawlfleet-refused';

/** What one browser context's traffic must obey, and where it goes on to. */
export interface EgressRules {
  /** The tenant's `allowHosts`: every address a request of the context connects to is checked. */
  policy: AddressPolicy;
  /** The session's proxy (credentials resolved); none: the guard connects directly. */
  upstream?: ProxyEndpoint | undefined;
  /** Through a proxy, resolve target names here too and refuse private ones (`proxy.resolveLocally`). */
  resolveLocally: boolean;
  /** Asked of every plain-http request (the guard sees its URL): robots.txt, say. What it throws refuses it. */
  checkUrl?: ((url: URL) => Promise<void>) | undefined;
}

/** One context's pass through the guard. */
export interface EgressLease {
  /** Playwright's `proxy` option for the context. */
  readonly proxy: { server: string; username: string; password: string; bypass: string };
  /** The requests the guard refused, as errors (`AddressNotAllowedError`, a robots refusal): the first tells why. */
  readonly refused: readonly Error[];
  release(): void;
}

interface Lease {
  password: string;
  rules: EgressRules;
  refused: Error[];
  /** The guarded lookup direct connections resolve names with, recording what it refuses. */
  lookup: LookupFunction;
}

/**
 * A forward proxy inside the worker (Apify's proxy-chain) that every browser context sends all of
 * its traffic through, so the browser obeys what HTTP jobs obey: each connection's address is
 * checked against the tenant's policy (names resolved here with the same guarded lookup, so a
 * name re-pointed at a private address is refused at connect time; literals checked as given),
 * plain-http requests pass `checkUrl`, and the session's own proxy is chained behind it. Chromium
 * resolves no target name itself when it has a proxy, so nothing reaches the network unchecked.
 * Each context authenticates with its own lease (Basic auth on 127.0.0.1).
 */
export class EgressGuard {
  private readonly leases = new Map<string, Lease>();
  private next = 0;

  private constructor(
    private readonly server: Server,
    private readonly refusal: typeof RequestError,
  ) {}

  static async start(): Promise<EgressGuard> {
    // Loaded by browser workers only: an HTTP worker never holds proxy-chain (about 1.4 MB).
    const { Server, RequestError } = await import('proxy-chain');
    let guard: EgressGuard | undefined;
    const server = new Server({
      port: 0,
      host: '127.0.0.1',
      prepareRequestFunction: (request) => (guard as EgressGuard).prepare(request),
    });
    guard = new EgressGuard(server, RequestError);
    await server.listen();
    return guard;
  }

  /** A lease for one browser context: its proxy settings, and what the guard refused for it. */
  lease(rules: EgressRules): EgressLease {
    const upstream = rules.upstream;
    if (upstream !== undefined) checkProxyAddress(rules.policy, upstream.id);
    const username = `ctx${++this.next}`;
    const password = randomBytes(12).toString('hex');
    const refused: Error[] = [];
    const lookup = recordingLookup(guardedLookup(rules.policy), refused);
    const lease: Lease = { password, rules, refused, lookup };
    this.leases.set(username, lease);
    return {
      // Chromium sends loopback directly unless told not to: `<-loopback>` makes it use the guard too.
      proxy: { server: `http://127.0.0.1:${this.server.port}`, username, password, bypass: '<-loopback>' },
      refused,
      release: () => this.leases.delete(username),
    };
  }

  private async prepare(request: {
    username: string;
    password: string;
    hostname: string;
    isHttp: boolean;
    request: { url?: string | undefined };
  }) {
    // Chromium sends credentials only once asked (407).
    if (request.username === '') return { requestAuthentication: true };
    const lease = this.leases.get(request.username);
    if (lease === undefined || lease.password !== request.password)
      return { requestAuthentication: true, failMsg: 'unknown or closed browser context' };
    const { policy, upstream, resolveLocally, checkUrl } = lease.rules;
    const host = request.hostname.replace(/^\[|\]$/g, '');
    try {
      if (isIP(host) !== 0) policy.check(host, host);
      else if (upstream !== undefined && resolveLocally && !policy.isHostListed(host)) await checkName(policy, host);
      if (request.isHttp && checkUrl !== undefined && request.request.url !== undefined)
        await checkUrl(new URL(request.request.url));
    } catch (error) {
      lease.refused.push(error as Error);
      // Over plain http the browser shows the guard's answer as the page: the header says whose it is.
      throw new this.refusal((error as Error).message, 403, { [REFUSED_HEADER]: '1' });
    }
    if (upstream !== undefined) return { upstreamProxyUrl: upstream.url };
    // Names are resolved here, each address checked before the connection is made.
    return { dnsLookup: lease.lookup as never };
  }

  /** Closes the guard and every connection through it. */
  async close(): Promise<void> {
    this.leases.clear();
    await this.server.close(true);
  }
}

/** A lookup that adds each address refusal to `refused`, so a failed page says why. */
function recordingLookup(lookup: LookupFunction, refused: Error[]): LookupFunction {
  return ((hostname: string, options: unknown, callback: (...args: unknown[]) => void) =>
    (lookup as (...args: unknown[]) => void)(hostname, options, (error: Error | null, ...rest: unknown[]) => {
      if (error instanceof AddressNotAllowedError) refused.push(error);
      callback(error, ...rest);
    })) as LookupFunction;
}
