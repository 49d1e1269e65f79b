import { randomUUID } from 'node:crypto';
import { type FetchConfig, parseConfig, tenantConfig } from '@crawlfleet/core';
import { classifyError } from '@crawlfleet/failures';
import { BodyTooLargeError, Fetcher, type FetchRequest, type FetchTenant } from '@crawlfleet/fetcher';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';

const KiB = 1024;
const MAX_BODY_BYTES = 64 * KiB;

const config = parseConfig({
  tenants: {
    loopback: { allowHosts: ['127.0.0.1'] },
    lan: { allowHosts: ['localhost'] },
    public: {},
    branded: { userAgent: 'branded-bot/2.0', headers: { 'x-tenant': 'branded', 'x-both': 'tenant' } },
  },
  // Every request is bounded well under the test timeout, even one the site never answers.
  fetch: { maxRedirects: 5, maxBodyBytes: MAX_BODY_BYTES, timeoutMs: 2_000, connectTimeoutMs: 1_000 },
});

/** A tenant that may reach the fixture by its address, 127.0.0.1. */
const loopback: FetchTenant = { name: 'loopback', config: tenantConfig(config, 'loopback') };
/** A tenant that may reach the fixture only through the host name `localhost`. */
const lan: FetchTenant = { name: 'lan', config: tenantConfig(config, 'lan') };
/** A tenant with no allowHosts: public addresses only. */
const publicOnly: FetchTenant = { name: 'public', config: tenantConfig(config, 'public') };
/** A tenant with its own user agent and headers, allowed to reach the fixture at 127.0.0.1. */
const branded: FetchTenant = {
  name: 'branded',
  config: { ...tenantConfig(config, 'branded'), allowHosts: ['127.0.0.1'] },
};

let site: FixtureSite;
let fetcher: Fetcher;
let closeFetchers: Fetcher[] = [];

beforeAll(async () => {
  site = await startFixtureSite();
});

afterAll(async () => {
  await site.close();
});

afterEach(() => {
  for (const f of closeFetchers) f.close();
  closeFetchers = [];
});

/** A fetcher of one test, closed after it; `overrides` change the fetch config. */
function newFetcher(overrides: Partial<FetchConfig> = {}): Fetcher {
  const f = new Fetcher({ ...config.fetch, ...overrides });
  closeFetchers.push(f);
  return f;
}

function get(url: string): FetchRequest {
  return { url, method: 'GET' };
}

/** A path no other test touches, so its hit count is this test's alone. */
function freshPath(prefix = '/ok'): string {
  return `${prefix}/${randomUUID()}`;
}

/** The same site through the host name `localhost` instead of its address. */
function localhostUrl(path: string): string {
  return site.url(path).replace('://127.0.0.1:', '://localhost:');
}

/** The error a promise rejects with; fails the test when it resolves instead. */
async function rejectionOf(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise;
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('expected the fetch to reject, but it resolved');
}

describe('Fetcher against the fixture site', { timeout: 5_000 }, () => {
  beforeAll(() => {
    fetcher = new Fetcher(config.fetch);
  });

  afterAll(() => {
    fetcher.close();
  });

  it('fetches a 200 page with its body, headers, final URL and byte count', async () => {
    const path = freshPath();
    const url = site.url(path);
    const page = await fetcher.fetch(get(url), loopback);
    expect(page.status).toBe(200);
    expect(page.url).toBe(url);
    expect(page.finalUrl).toBe(url);
    expect(page.redirects).toBe(0);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.body.toString('utf8')).toContain(`<h1>${path}</h1>`);
    expect(page.bodyBytes).toBe(page.body.length);
    expect(page.bodyBytes).toBe(Number(page.headers['content-length']));
    expect(page.durationMs).toBeGreaterThanOrEqual(0);
    expect(site.hits(path)).toBe(1);
  });

  it('resolves a 404 with its status instead of throwing', async () => {
    const page = await fetcher.fetch(get(site.url('/status/404')), loopback);
    expect(page.status).toBe(404);
    expect(page.body.toString('utf8')).toBe('status 404\n');
  });

  it.each([500, 503, 429])('resolves a %i with its status, leaving classification to the caller', async (status) => {
    const page = await fetcher.fetch(get(site.url(`/status/${status}`)), loopback);
    expect(page.status).toBe(status);
  });

  it('follows a redirect chain and reports the final URL and the number of redirects', async () => {
    const page = await fetcher.fetch(get(site.url('/redirect-chain/3')), loopback);
    expect(page.status).toBe(200);
    expect(page.url).toBe(site.url('/redirect-chain/3'));
    expect(page.finalUrl).toBe(site.url('/redirect-chain/0'));
    expect(page.redirects).toBe(3);
    expect(page.body.toString('utf8')).toContain('End of the chain.');
  });

  it('rejects a redirect loop after maxRedirects with ERR_TOO_MANY_REDIRECTS (non-recoverable)', async () => {
    const error = await rejectionOf(fetcher.fetch(get(site.url('/redirect-loop/0')), loopback));
    expect(error.code).toBe('ERR_TOO_MANY_REDIRECTS');
    expect(classifyError(error)).toEqual({ failureClass: 'non_recoverable', reason: 'too_many_redirects' });
    // The first request and the 5 redirects it was allowed to follow.
    expect(site.hitsByPrefix('/redirect-loop/')).toBe(6);
  });

  it.each(['/huge', '/huge-chunked'])(
    'rejects a body over maxBodyBytes from %s with BodyTooLargeError',
    async (route) => {
      const started = performance.now();
      const error = await rejectionOf(fetcher.fetch(get(site.url(`${route}?bytes=${4 * 1024 * KiB}`)), loopback));
      expect(error).toBeInstanceOf(BodyTooLargeError);
      expect(error.code).toBe('ERR_BODY_TOO_LARGE');
      expect(error.message).toContain(String(MAX_BODY_BYTES));
      expect(classifyError(error)).toEqual({ failureClass: 'non_recoverable', reason: 'body_too_large' });
      expect(performance.now() - started).toBeLessThan(2_000);
    },
  );

  it.each(['/huge', '/huge-chunked'])('rejects a body one byte over maxBodyBytes from %s', async (route) => {
    const error = await rejectionOf(fetcher.fetch(get(site.url(`${route}?bytes=${MAX_BODY_BYTES + 1}`)), loopback));
    expect(error).toBeInstanceOf(BodyTooLargeError);
    expect(error.code).toBe('ERR_BODY_TOO_LARGE');
  });

  it.each([
    { route: '/huge', bytes: MAX_BODY_BYTES - 1 },
    { route: '/huge-chunked', bytes: MAX_BODY_BYTES - 1 },
    { route: '/huge', bytes: MAX_BODY_BYTES },
    { route: '/huge-chunked', bytes: MAX_BODY_BYTES },
    { route: '/huge-chunked', bytes: 0 },
  ])('accepts a body of $bytes bytes from $route, up to the cap, with exact bodyBytes', async ({ route, bytes }) => {
    const page = await fetcher.fetch(get(site.url(`${route}?bytes=${bytes}`)), loopback);
    expect(page.status).toBe(200);
    expect(page.bodyBytes).toBe(bytes);
    expect(page.body.length).toBe(bytes);
    // The fixture repeats bytes 0..255.
    if (bytes > 0) expect(page.body[bytes - 1]).toBe((bytes - 1) % 256);
  });

  it('rejects a request the server never answers after timeoutMs, as a recoverable timeout', async () => {
    const quick = newFetcher({ timeoutMs: 300 });
    const started = performance.now();
    const error = await rejectionOf(quick.fetch(get(site.url('/hang')), loopback));
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(2_000);
    expect(classifyError(error)).toEqual({ failureClass: 'recoverable', reason: 'timeout' });
  });

  it('times out a response whose headers came at once but whose body drips too slowly', async () => {
    const quick = newFetcher({ timeoutMs: 400 });
    const started = performance.now();
    const error = await rejectionOf(quick.fetch(get(site.url(`/drip?ms=50&bytes=1000&id=${randomUUID()}`)), loopback));
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(350);
    expect(elapsed).toBeLessThan(2_000);
    expect(classifyError(error)).toEqual({ failureClass: 'recoverable', reason: 'timeout' });
    // The same route finishing inside the deadline is a page like any other.
    const page = await newFetcher({ timeoutMs: 10_000 }).fetch(
      get(site.url(`/drip?ms=5&bytes=10&id=${randomUUID()}`)),
      loopback,
    );
    expect(page.body.toString()).toBe('.'.repeat(10));
  });

  it('does not count the wait for a free socket against the timeout', async () => {
    // One socket per host: the second fetch waits until the hung one times out and frees it.
    const narrow = newFetcher({ timeoutMs: 600, maxSocketsPerHost: 1 });
    const hung = rejectionOf(narrow.fetch(get(site.url('/hang')), loopback));
    const queued = narrow.fetch(get(site.url(`/slow?ms=300&id=${randomUUID()}`)), loopback);
    expect(classifyError(await hung)).toEqual({ failureClass: 'recoverable', reason: 'timeout' });
    // It waited about 600 ms for the socket and then took 300 ms: over the timeout in total, but
    // the site answered it within the timeout.
    const page = await queued;
    expect(page.status).toBe(200);
    expect(page.durationMs).toBeGreaterThan(800);
  });

  it('rejects a connection reset by the server, as a recoverable connection_reset', async () => {
    const error = await rejectionOf(fetcher.fetch(get(site.url('/reset')), loopback));
    expect(error.code).toBe('ECONNRESET');
    expect(classifyError(error)).toEqual({ failureClass: 'recoverable', reason: 'connection_reset' });
  });

  it('rejects a response no HTTP parser accepts, as a recoverable protocol_error', async () => {
    const error = await rejectionOf(fetcher.fetch(get(site.url('/garbage')), loopback));
    expect(error.code).toMatch(/^HPE_/);
    expect(classifyError(error)).toEqual({ failureClass: 'recoverable', reason: 'protocol_error' });
  });

  it('sends a POST body and method to the server', async () => {
    const page = await fetcher.fetch(
      { url: site.url('/echo'), method: 'POST', body: 'hello=world', headers: { 'content-type': 'text/plain' } },
      loopback,
    );
    expect(page.status).toBe(200);
    const echoed = JSON.parse(page.body.toString('utf8')) as { method: string; body: string; headers: object };
    expect(echoed).toMatchObject({ method: 'POST', body: 'hello=world', path: '/echo' });
    expect(echoed.headers).toMatchObject({ 'content-type': 'text/plain', 'content-length': '11' });
  });

  it.each(['POST', 'PUT', 'DELETE'] as const)('sends a %s without a body and resolves', async (method) => {
    const page = await fetcher.fetch({ url: site.url('/echo'), method }, loopback);
    expect(page.status).toBe(200);
    expect(JSON.parse(page.body.toString('utf8'))).toMatchObject({ method, body: '' });
  });

  it("sends the config's user agent by default", async () => {
    const page = await fetcher.fetch(get(site.url('/echo')), loopback);
    expect(JSON.parse(page.body.toString('utf8')).headers['user-agent']).toBe(config.fetch.userAgent);
  });

  it("sends the tenant's user agent and headers, with the request's own headers winning", async () => {
    const page = await fetcher.fetch(
      { url: site.url('/echo'), method: 'GET', headers: { 'x-both': 'request', 'x-request': 'yes' } },
      branded,
    );
    expect(JSON.parse(page.body.toString('utf8')).headers).toMatchObject({
      'user-agent': 'branded-bot/2.0',
      'x-tenant': 'branded',
      'x-request': 'yes',
      'x-both': 'request',
    });
  });
});

describe('Fetcher address safety', { timeout: 5_000 }, () => {
  it('refuses a loopback address for a tenant without allowHosts and never connects', async () => {
    const f = newFetcher();
    const path = freshPath();
    const error = await rejectionOf(f.fetch(get(site.url(path)), publicOnly));
    expect(error.code).toBe('ERR_ADDRESS_NOT_ALLOWED');
    expect(error.message).toContain('allowHosts');
    expect(classifyError(error)).toEqual({ failureClass: 'non_recoverable', reason: 'address_not_allowed' });
    expect(site.hits(path)).toBe(0);
  });

  it('refuses a host name that resolves to loopback for a tenant without allowHosts and never connects', async () => {
    const f = newFetcher();
    const path = freshPath();
    const error = await rejectionOf(f.fetch(get(localhostUrl(path)), publicOnly));
    expect(error.code).toBe('ERR_ADDRESS_NOT_ALLOWED');
    expect(site.hits(path)).toBe(0);
  });

  it('lets a tenant that lists the host name localhost fetch through it', async () => {
    const f = newFetcher();
    const path = freshPath();
    const page = await f.fetch(get(localhostUrl(path)), lan);
    expect(page.status).toBe(200);
    expect(page.finalUrl).toBe(localhostUrl(path));
    expect(site.hits(path)).toBe(1);
  });

  it('refuses the same tenant its address 127.0.0.1, which it does not list', async () => {
    const f = newFetcher();
    const path = freshPath();
    const error = await rejectionOf(f.fetch(get(site.url(path)), lan));
    expect(error.code).toBe('ERR_ADDRESS_NOT_ALLOWED');
    expect(site.hits(path)).toBe(0);
  });

  it('checks every redirect hop: a redirect from an allowed host to an unlisted loopback address is refused', async () => {
    const f = newFetcher();
    const target = freshPath();
    const redirect = `/redirect?to=${encodeURIComponent(site.url(target))}`;
    const error = await rejectionOf(f.fetch(get(localhostUrl(redirect)), lan));
    expect(error.code).toBe('ERR_ADDRESS_NOT_ALLOWED');
    expect(site.hits(redirect)).toBe(1);
    expect(site.hits(target)).toBe(0);
  });

  it('follows a redirect to an address the tenant lists', async () => {
    const f = newFetcher();
    const target = freshPath();
    const redirect = `/redirect?to=${encodeURIComponent(localhostUrl(target))}`;
    const page = await f.fetch(get(localhostUrl(redirect)), lan);
    expect(page.finalUrl).toBe(localhostUrl(target));
    expect(page.redirects).toBe(1);
    expect(site.hits(target)).toBe(1);
  });

  it("keeps tenants' connection pools apart: a keep-alive socket of an allowed tenant is not reused by a refused one", async () => {
    const f = newFetcher();
    const first = freshPath();
    const second = freshPath();
    await expect(f.fetch(get(localhostUrl(first)), lan)).resolves.toMatchObject({ status: 200 });
    const error = await rejectionOf(f.fetch(get(localhostUrl(second)), publicOnly));
    expect(error.code).toBe('ERR_ADDRESS_NOT_ALLOWED');
    expect(site.hits(second)).toBe(0);
    // The allowed tenant's pool still works after the refusal.
    await expect(f.fetch(get(localhostUrl(second)), lan)).resolves.toMatchObject({ status: 200 });
    expect(site.hits(second)).toBe(1);
  });

  it('refuses a tenant without allowHosts right after an allowed tenant fetched the same address', async () => {
    const f = newFetcher();
    const first = freshPath();
    const second = freshPath();
    await expect(f.fetch(get(site.url(first)), loopback)).resolves.toMatchObject({ status: 200 });
    const error = await rejectionOf(f.fetch(get(site.url(second)), publicOnly));
    expect(error.code).toBe('ERR_ADDRESS_NOT_ALLOWED');
    expect(site.hits(second)).toBe(0);
  });
});
