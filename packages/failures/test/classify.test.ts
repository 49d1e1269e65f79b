import { describe, expect, it } from 'vitest';
import { type Classification, classifyError, classifyResponse, type ResponseFacts } from '../src/index.js';

/** A fixed clock, so Retry-After dates turn into exact delays. */
const NOW = Date.parse('2025-01-01T00:00:00.000Z');

function response(status: number, headers: ResponseFacts['headers'] = {}, bodySnippet?: string): ResponseFacts {
  return bodySnippet === undefined ? { status, headers } : { status, headers, bodySnippet };
}

describe('classifyResponse', () => {
  it.each([200, 201, 204, 206, 299, 301, 302, 303, 307, 308, 399])('treats status %i as a success', (status) => {
    expect(classifyResponse(response(status), NOW)).toBeUndefined();
  });

  it('treats 304 Not Modified as a success, not a failure', () => {
    expect(classifyResponse(response(304), NOW)).toBeUndefined();
  });

  it.each([400, 401, 404, 405, 410, 413, 501])(
    'fails status %i as non_recoverable with reason http_<status>',
    (status) => {
      expect(classifyResponse(response(status), NOW)).toEqual({
        failureClass: 'non_recoverable',
        reason: `http_${status}`,
        status,
      });
    },
  );

  it.each([408, 425, 429, 500, 502, 503, 504, 520, 524])(
    'fails status %i as recoverable with reason http_<status>',
    (status) => {
      expect(classifyResponse(response(status), NOW)).toEqual({
        failureClass: 'recoverable',
        reason: `http_${status}`,
        status,
        retryAfterMs: undefined,
      });
    },
  );

  it.each<{ rule: string; status: number; retryAfter: string | string[]; retryAfterMs: number | undefined }>([
    { rule: 'reads Retry-After seconds on a 429', status: 429, retryAfter: '120', retryAfterMs: 120_000 },
    { rule: 'reads Retry-After 0 as no wait', status: 429, retryAfter: '0', retryAfterMs: 0 },
    {
      rule: 'reads a Retry-After HTTP-date on a 429 against now',
      status: 429,
      retryAfter: new Date(NOW + 90_000).toUTCString(),
      retryAfterMs: 90_000,
    },
    {
      rule: 'reads a Retry-After date in the past as no wait',
      status: 429,
      retryAfter: new Date(NOW - 90_000).toUTCString(),
      retryAfterMs: 0,
    },
    { rule: 'reads Retry-After seconds on a 503', status: 503, retryAfter: '30', retryAfterMs: 30_000 },
    {
      rule: 'reads the first of repeated Retry-After headers',
      status: 503,
      retryAfter: ['5', '60'],
      retryAfterMs: 5_000,
    },
    { rule: 'ignores an unreadable Retry-After', status: 429, retryAfter: 'later', retryAfterMs: undefined },
  ])('$rule', ({ status, retryAfter, retryAfterMs }) => {
    expect(classifyResponse(response(status, { 'retry-after': retryAfter }), NOW)).toEqual({
      failureClass: 'recoverable',
      reason: `http_${status}`,
      status,
      retryAfterMs,
    });
  });

  it('does not read Retry-After on a non-recoverable status', () => {
    expect(classifyResponse(response(404, { 'retry-after': '10' }), NOW)).toEqual({
      failureClass: 'non_recoverable',
      reason: 'http_404',
      status: 404,
    });
  });

  it.each<{ rule: string; facts: ResponseFacts; expected: Classification | undefined }>([
    {
      rule: 'blocks a 403 with cf-mitigated: challenge as waf_challenge',
      facts: response(403, { 'cf-mitigated': 'challenge' }),
      expected: { failureClass: 'compliance_blocked', reason: 'waf_challenge', status: 403 },
    },
    {
      rule: 'blocks a 429 with cf-mitigated: challenge as waf_challenge',
      facts: response(429, { 'cf-mitigated': 'challenge', 'retry-after': '5' }),
      expected: { failureClass: 'compliance_blocked', reason: 'waf_challenge', status: 429 },
    },
    {
      rule: 'blocks a 403 whose body carries the cf-chl marker as waf_challenge',
      facts: response(403, {}, '<div id="cf-chl-widget"></div>'),
      expected: { failureClass: 'compliance_blocked', reason: 'waf_challenge', status: 403 },
    },
    {
      rule: 'blocks a 403 whose body is the Cloudflare "Attention Required!" page as waf_challenge',
      facts: response(403, {}, '<title>Attention Required! | Cloudflare</title>'),
      expected: { failureClass: 'compliance_blocked', reason: 'waf_challenge', status: 403 },
    },
    {
      rule: 'blocks a 403 whose body carries g-recaptcha as captcha',
      facts: response(403, {}, '<div class="g-recaptcha" data-sitekey="k"></div>'),
      expected: { failureClass: 'compliance_blocked', reason: 'captcha', status: 403 },
    },
    {
      rule: 'blocks a 429 whose body carries g-recaptcha as captcha',
      facts: response(429, { 'retry-after': '5' }, '<div class="g-recaptcha"></div>'),
      expected: { failureClass: 'compliance_blocked', reason: 'captcha', status: 429 },
    },
    {
      rule: 'blocks a 403 whose body carries hcaptcha as captcha',
      facts: response(403, {}, '<script src="https://js.hcaptcha.com/1/api.js"></script>'),
      expected: { failureClass: 'compliance_blocked', reason: 'captcha', status: 403 },
    },
    {
      rule: 'blocks a 429 whose body carries cf-chl as waf_challenge',
      facts: response(429, {}, 'window._cf_chl_opt = {}; <div class="cf-chl-challenge"></div>'),
      expected: { failureClass: 'compliance_blocked', reason: 'waf_challenge', status: 429 },
    },
    {
      rule: 'fails a plain 403 as non_recoverable http_403',
      facts: response(403, {}, '<h1>Forbidden</h1>'),
      expected: { failureClass: 'non_recoverable', reason: 'http_403', status: 403 },
    },
    {
      rule: 'fails a 403 with no body snippet at all as non_recoverable http_403',
      facts: response(403),
      expected: { failureClass: 'non_recoverable', reason: 'http_403', status: 403 },
    },
    {
      rule: 'fails a 403 with cf-mitigated other than challenge as non_recoverable http_403',
      facts: response(403, { 'cf-mitigated': 'block' }),
      expected: { failureClass: 'non_recoverable', reason: 'http_403', status: 403 },
    },
    {
      rule: 'ignores challenge markers on a 404',
      facts: response(404, { 'cf-mitigated': 'challenge' }, '<div class="g-recaptcha"></div>'),
      expected: { failureClass: 'non_recoverable', reason: 'http_404', status: 404 },
    },
    {
      rule: 'ignores challenge markers on a 200',
      facts: response(200, { 'cf-mitigated': 'challenge' }, '<div class="g-recaptcha"></div>'),
      expected: undefined,
    },
  ])('$rule', ({ facts, expected }) => {
    expect(classifyResponse(facts, NOW)).toEqual(expected);
  });
});

/** An error as Node and got throw them: an Error with a `code`. */
function errorWithCode(code: string): Error {
  return Object.assign(new Error(`failed with ${code}`), { code });
}

describe('classifyError', () => {
  it.each<{ code: string; failureClass: Classification['failureClass']; reason: string }>([
    { code: 'ETIMEDOUT', failureClass: 'recoverable', reason: 'timeout' },
    { code: 'ESOCKETTIMEDOUT', failureClass: 'recoverable', reason: 'timeout' },
    { code: 'ECONNRESET', failureClass: 'recoverable', reason: 'connection_reset' },
    { code: 'ECONNABORTED', failureClass: 'recoverable', reason: 'connection_reset' },
    { code: 'EPIPE', failureClass: 'recoverable', reason: 'connection_reset' },
    { code: 'ERR_STREAM_PREMATURE_CLOSE', failureClass: 'recoverable', reason: 'connection_reset' },
    { code: 'ECONNREFUSED', failureClass: 'recoverable', reason: 'connection_refused' },
    { code: 'EHOSTUNREACH', failureClass: 'recoverable', reason: 'host_unreachable' },
    { code: 'ENETUNREACH', failureClass: 'recoverable', reason: 'host_unreachable' },
    { code: 'EAI_AGAIN', failureClass: 'recoverable', reason: 'dns_temporary_failure' },
    { code: 'ENOTFOUND', failureClass: 'non_recoverable', reason: 'dns_not_found' },
    { code: 'ERR_TOO_MANY_REDIRECTS', failureClass: 'non_recoverable', reason: 'too_many_redirects' },
    { code: 'ERR_INVALID_URL', failureClass: 'non_recoverable', reason: 'invalid_url' },
    { code: 'ERR_UNSUPPORTED_PROTOCOL', failureClass: 'non_recoverable', reason: 'invalid_url' },
    { code: 'ERR_BODY_TOO_LARGE', failureClass: 'non_recoverable', reason: 'body_too_large' },
    { code: 'ERR_ADDRESS_NOT_ALLOWED', failureClass: 'non_recoverable', reason: 'address_not_allowed' },
    { code: 'ERR_ROBOTS_DISALLOWED', failureClass: 'non_recoverable', reason: 'robots_disallowed' },
    { code: 'ERR_ROBOTS_UNAVAILABLE', failureClass: 'recoverable', reason: 'robots_unavailable' },
    { code: 'ERR_DOWNLOAD_REFUSED', failureClass: 'non_recoverable', reason: 'download_refused' },
    { code: 'ERR_BROWSER_CRASHED', failureClass: 'recoverable', reason: 'browser_crashed' },
    { code: 'ERR_BROWSER_UNAVAILABLE', failureClass: 'recoverable', reason: 'browser_unavailable' },
    { code: 'CERT_HAS_EXPIRED', failureClass: 'non_recoverable', reason: 'tls_certificate' },
    { code: 'DEPTH_ZERO_SELF_SIGNED_CERT', failureClass: 'non_recoverable', reason: 'tls_certificate' },
    { code: 'ERR_TLS_CERT_ALTNAME_INVALID', failureClass: 'non_recoverable', reason: 'tls_certificate' },
    { code: 'HPE_INVALID_CONSTANT', failureClass: 'recoverable', reason: 'protocol_error' },
    { code: 'HPE_INVALID_STATUS', failureClass: 'recoverable', reason: 'protocol_error' },
    { code: 'EWHATEVER', failureClass: 'recoverable', reason: 'network_error' },
  ])('classifies an error with code $code as $failureClass $reason', ({ code, failureClass, reason }) => {
    expect(classifyError(errorWithCode(code))).toEqual({ failureClass, reason });
  });

  it('classifies a TimeoutError without a code as a recoverable timeout', () => {
    const error = new Error('timed out');
    error.name = 'TimeoutError';
    expect(classifyError(error)).toEqual({ failureClass: 'recoverable', reason: 'timeout' });
  });

  it('lets a known code win over the error name', () => {
    const error = Object.assign(new Error('refused'), { name: 'TimeoutError', code: 'ERR_ADDRESS_NOT_ALLOWED' });
    expect(classifyError(error)).toEqual({ failureClass: 'non_recoverable', reason: 'address_not_allowed' });
  });

  it.each<{ rule: string; thrown: unknown }>([
    { rule: 'an Error without a code', thrown: new Error('something broke') },
    { rule: 'null', thrown: null },
    { rule: 'undefined', thrown: undefined },
    { rule: 'a bare string', thrown: 'ECONNRESET' },
    { rule: 'a number', thrown: 42 },
    { rule: 'an object whose code is not a string', thrown: { code: 404 } },
  ])('classifies $rule as a recoverable network_error', ({ thrown }) => {
    expect(classifyError(thrown)).toEqual({ failureClass: 'recoverable', reason: 'network_error' });
  });
});
