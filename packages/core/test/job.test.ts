import { describe, expect, it } from 'vitest';
import { type FetchJob, parseFetchJob } from '../src/index.js';

const minimal = {
  v: 1,
  url: 'https://example.com/',
  method: 'GET',
  tenant: 'default',
  idempotencyKey: 'ik-0123456789abcdef0123456789abcdef01234567',
  submittedAt: '2025-01-15T10:30:00.000Z',
};

const full = {
  ...minimal,
  url: 'https://api.example.com/v2/search?q=shoes',
  method: 'POST',
  headers: { 'content-type': 'application/json', accept: 'application/json' },
  body: '{"page":1}',
  tenant: 'acme.prod',
  sessionId: 'session_01',
  trace: {
    traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    tracestate: 'vendor=value',
  },
};

/** The reason a job was refused; fails the test when the job was accepted. */
function reasonFor(data: unknown): string {
  const result = parseFetchJob(data);
  if (result.ok) throw new Error(`expected ${JSON.stringify(data)} to be refused`);
  return result.reason;
}

describe('parseFetchJob', () => {
  it('accepts a job with every field', () => {
    const result = parseFetchJob(full);
    expect(result).toEqual({ ok: true, job: full });
  });

  it('accepts a minimal job', () => {
    const result = parseFetchJob(minimal);
    expect(result.ok).toBe(true);
    const job: FetchJob | undefined = result.ok ? result.job : undefined;
    expect(job?.headers).toBeUndefined();
    expect(job?.body).toBeUndefined();
    expect(job?.trace).toBeUndefined();
  });

  it.each(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])('accepts the %s method', (method) => {
    expect(parseFetchJob({ ...minimal, method }).ok).toBe(true);
  });

  it('rejects a job without a url and names the url field', () => {
    const { url: _url, ...withoutUrl } = minimal;
    expect(reasonFor(withoutUrl)).toMatch(/^url: /);
  });

  it('rejects a url that is not a URL', () => {
    expect(reasonFor({ ...minimal, url: 'not a url' })).toMatch(/^url: /);
  });

  it.each(['get', 'FETCH', '', 'CONNECT'])('rejects the method %j and names the method field', (method) => {
    expect(reasonFor({ ...minimal, method })).toMatch(/^method: /);
  });

  it.each(['acme corp', '', '-acme', 'a:b', 't'.repeat(65)])(
    'rejects the tenant name %j and names the tenant field',
    (tenant) => {
      expect(reasonFor({ ...minimal, tenant })).toMatch(/^tenant: /);
    },
  );

  it('rejects a bad session id and names the sessionId field', () => {
    expect(reasonFor({ ...minimal, sessionId: 'has space' })).toMatch(/^sessionId: /);
  });

  it.each([2, 0, '1', undefined])('rejects the version %j and names the v field', (v) => {
    expect(reasonFor({ ...minimal, v })).toMatch(/^v: /);
  });

  it('accepts a url of 8192 characters and refuses a longer one, saying how long a url may be', () => {
    const url = (length: number) => `https://example.com/${'a'.repeat(length - 'https://example.com/'.length)}`;
    expect(parseFetchJob({ ...minimal, url: url(8192) }).ok).toBe(true);
    expect(reasonFor({ ...minimal, url: url(8193) })).toBe('url: longer than 8192 characters');
  });

  it('refuses a body over 1 MiB, saying how long a body may be', () => {
    expect(parseFetchJob({ ...minimal, body: 'x'.repeat(1024 * 1024) }).ok).toBe(true);
    expect(reasonFor({ ...minimal, body: 'x'.repeat(1024 * 1024 + 1) })).toBe('body: longer than 1048576 characters');
  });

  it('rejects a submittedAt that is not an ISO date-time', () => {
    expect(reasonFor({ ...minimal, submittedAt: 'yesterday' })).toMatch(/^submittedAt: /);
  });

  it('names the nested path of a wrong header value', () => {
    expect(reasonFor({ ...minimal, headers: { accept: 42 } })).toMatch(/^headers\.accept: /);
  });

  it.each(['bad name', 'x-a:b', '', 'naïve'])('refuses the header name %j that no HTTP client would send', (name) => {
    expect(reasonFor({ ...minimal, headers: { [name]: '1' } })).toBe(`headers.${name}: not a valid HTTP header name`);
  });

  it.each(['a\nb', 'a\rb', 'nul\u0000', '€'])('refuses the header value %j that no HTTP client would send', (value) => {
    expect(reasonFor({ ...minimal, headers: { 'x-a': value } })).toBe('headers.x-a: not a valid HTTP header value');
  });

  it('accepts header names and values that Node sends as they are', () => {
    const headers = { "x-a!#$%&'*+.^_`|~": '', accept: 'text/html; q=0.9,\t*/*', 'x-latin1': 'café' };
    expect(parseFetchJob({ ...minimal, headers })).toEqual({ ok: true, job: { ...minimal, headers } });
  });

  it('names the nested path of a missing traceparent', () => {
    expect(reasonFor({ ...minimal, trace: {} })).toMatch(/^trace\.traceparent: /);
  });

  it.each([
    { shape: 'null', data: null },
    { shape: 'a string', data: 'https://example.com/' },
    { shape: 'a number', data: 1 },
    { shape: 'an array', data: [minimal] },
    { shape: 'undefined', data: undefined },
  ])('rejects $shape and says the root is wrong', ({ data }) => {
    expect(reasonFor(data)).toMatch(/^\(root\): /);
  });

  it('gives a one-line reason', () => {
    expect(reasonFor({})).not.toMatch(/[\r\n]/);
  });
});
