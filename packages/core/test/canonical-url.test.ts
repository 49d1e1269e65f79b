import { describe, expect, it } from 'vitest';
import { canonicalizeUrl, isTrackingParam, parseTargetUrl } from '../src/index.js';
import { expectInputError } from './expect-input-error.js';

describe('canonicalizeUrl', () => {
  it.each([
    {
      rule: 'lower-cases an upper-case scheme and host',
      input: 'HTTP://EXAMPLE.COM/Path',
      expected: 'http://example.com/Path',
    },
    {
      rule: 'keeps the case of the path',
      input: 'https://example.com/About/Team',
      expected: 'https://example.com/About/Team',
    },
    { rule: 'drops the default port 80 of http', input: 'http://example.com:80/a', expected: 'http://example.com/a' },
    {
      rule: 'drops the default port 443 of https',
      input: 'https://example.com:443/a',
      expected: 'https://example.com/a',
    },
    { rule: 'keeps a non-default port', input: 'https://example.com:8443/a', expected: 'https://example.com:8443/a' },
    {
      rule: 'keeps port 443 on http, where it is not the default',
      input: 'http://example.com:443/',
      expected: 'http://example.com:443/',
    },
    { rule: 'drops the fragment', input: 'https://example.com/docs#install', expected: 'https://example.com/docs' },
    {
      rule: 'sorts the query by name',
      input: 'https://example.com/?b=2&a=1&c=3',
      expected: 'https://example.com/?a=1&b=2&c=3',
    },
    {
      rule: 'keeps repeated names in their original order',
      input: 'https://example.com/?tag=z&id=1&tag=a&tag=m',
      expected: 'https://example.com/?id=1&tag=z&tag=a&tag=m',
    },
    {
      rule: 'removes utm_* parameters and keeps the others',
      input: 'https://example.com/p?utm_source=news&id=7&utm_medium=email&utm_campaign=spring',
      expected: 'https://example.com/p?id=7',
    },
    {
      rule: 'removes gclid, fbclid and msclkid',
      input: 'https://example.com/p?gclid=Cj0K&q=shoes&fbclid=IwAR&msclkid=abc123',
      expected: 'https://example.com/p?q=shoes',
    },
    {
      rule: 'removes tracking parameters whatever their case',
      input: 'https://example.com/p?UTM_Source=x&GCLID=y&page=2',
      expected: 'https://example.com/p?page=2',
    },
    {
      rule: 'leaves no trailing ? when every parameter was tracking',
      input: 'https://example.com/p?utm_source=x&gclid=y',
      expected: 'https://example.com/p',
    },
    { rule: 'drops an empty query', input: 'https://example.com/p?', expected: 'https://example.com/p' },
    {
      rule: 'drops empty pairs from the query',
      input: 'https://example.com/p?&a=1&&',
      expected: 'https://example.com/p?a=1',
    },
    { rule: 'turns an empty path into /', input: 'https://example.com', expected: 'https://example.com/' },
    {
      rule: 'keeps a path without a trailing slash as it is',
      input: 'https://example.com/a',
      expected: 'https://example.com/a',
    },
    { rule: 'keeps the trailing slash of a path', input: 'https://example.com/a/', expected: 'https://example.com/a/' },
    { rule: 'resolves dot segments', input: 'https://example.com/a/./b/../c', expected: 'https://example.com/a/c' },
    {
      rule: 'resolves percent-encoded dot segments',
      input: 'https://example.com/a/%2e%2E/b',
      expected: 'https://example.com/b',
    },
    {
      rule: 'upper-cases percent-escapes in the path',
      input: 'https://example.com/a%2fb',
      expected: 'https://example.com/a%2Fb',
    },
    {
      rule: 'decodes escapes of unreserved characters in the path',
      input: 'https://example.com/%7Euser/%41bc',
      expected: 'https://example.com/~user/Abc',
    },
    {
      rule: 'normalizes percent-escapes in the query the same way',
      input: 'https://example.com/?q=%7e%2fx%3d',
      expected: 'https://example.com/?q=~%2Fx%3D',
    },
    {
      rule: 'does not decode an escaped percent sign twice',
      input: 'https://example.com/%2541',
      expected: 'https://example.com/%2541',
    },
    {
      rule: 'punycodes an IDN host',
      input: 'https://Bücher.example/katalog',
      expected: 'https://xn--bcher-kva.example/katalog',
    },
    {
      rule: 'keeps an IPv6 host in brackets',
      input: 'http://[2001:DB8::1]:8080/x',
      expected: 'http://[2001:db8::1]:8080/x',
    },
    {
      rule: 'removes the trailing dot of the host',
      input: 'https://example.com./a',
      expected: 'https://example.com/a',
    },
    {
      rule: 'keeps ?a and ?a= distinct (bare name)',
      input: 'https://example.com/?a',
      expected: 'https://example.com/?a',
    },
    {
      rule: 'keeps ?a and ?a= distinct (empty value)',
      input: 'https://example.com/?a=',
      expected: 'https://example.com/?a=',
    },
    {
      rule: 'preserves a plus sign in the query',
      input: 'https://example.com/search?q=a+b',
      expected: 'https://example.com/search?q=a+b',
    },
    {
      rule: 'canonicalizes an e-commerce URL with many parameters',
      input:
        'HTTPS://Shop.Example.com:443/Products/Shoes?size=42&color=red&utm_source=google&utm_medium=cpc' +
        '&gclid=EAIaIQ&ref=home&color=blue&sort=price_asc#reviews',
      expected: 'https://shop.example.com/Products/Shoes?color=red&color=blue&ref=home&size=42&sort=price_asc',
    },
    {
      rule: 'percent-encodes spaces in the path',
      input: 'https://example.com/my files/annual report.pdf',
      expected: 'https://example.com/my%20files/annual%20report.pdf',
    },
    { rule: 'trims surrounding whitespace', input: '  https://example.com/a \n', expected: 'https://example.com/a' },
  ])('$rule', ({ input, expected }) => {
    expect(canonicalizeUrl(input)).toBe(expected);
  });

  it('accepts an already parsed URL', () => {
    expect(canonicalizeUrl(new URL('HTTPS://Example.com:443/a?b=1&a=2#x'))).toBe('https://example.com/a?a=2&b=1');
  });

  it('is idempotent', () => {
    const once = canonicalizeUrl('HTTP://Example.com:80/a/../b/%7e?z=1&utm_id=3&a=%2f#f');
    expect(canonicalizeUrl(once)).toBe(once);
  });

  it('rejects what parseTargetUrl rejects', () => {
    expectInputError(() => canonicalizeUrl('ftp://example.com/file'), 'unsupported_scheme');
  });
});

describe('isTrackingParam', () => {
  it.each(['utm_source', 'utm_content', 'gclid', 'fbclid', 'msclkid', 'Gclid'])('treats %s as tracking', (name) => {
    expect(isTrackingParam(name)).toBe(true);
  });

  it.each(['id', 'q', 'utm', 'source', 'page'])('treats %s as content', (name) => {
    expect(isTrackingParam(name)).toBe(false);
  });
});

describe('parseTargetUrl', () => {
  it('returns the parsed URL of an absolute http(s) URL', () => {
    expect(parseTargetUrl('https://example.com/a?b=1').href).toBe('https://example.com/a?b=1');
    expect(parseTargetUrl('http://localhost:8080/').port).toBe('8080');
  });

  it.each([
    { scheme: 'ftp', input: 'ftp://example.com/file.txt' },
    { scheme: 'javascript', input: 'javascript:alert(1)' },
    { scheme: 'file', input: 'file:///etc/passwd' },
    { scheme: 'mailto', input: 'mailto:someone@example.com' },
    { scheme: 'data', input: 'data:text/html,<h1>hi</h1>' },
  ])('rejects the $scheme scheme as unsupported_scheme', ({ scheme, input }) => {
    const error = expectInputError(() => parseTargetUrl(input), 'unsupported_scheme');
    expect(error.message).toContain(`got ${scheme}:`);
  });

  it.each([
    { shape: 'an absolute path', input: '/products/1' },
    { shape: 'a host without a scheme', input: 'example.com/products' },
    { shape: 'a relative path', input: '../up' },
    { shape: 'the empty string', input: '' },
    { shape: 'garbage', input: 'not a url at all' },
    { shape: 'a scheme without a host', input: 'http://' },
    { shape: 'garbage with a newline', input: 'oops\nsecond line' },
  ])('rejects $shape as invalid_url', ({ input }) => {
    expectInputError(() => parseTargetUrl(input), 'invalid_url');
  });

  it.each([
    { shape: 'user and password', input: 'https://alice:s3cret@example.com/' },
    { shape: 'a user only', input: 'https://alice@example.com/' },
    { shape: 'a password only', input: 'https://:s3cret@example.com/' },
  ])('rejects embedded credentials ($shape) as credentials_in_url', ({ input }) => {
    expectInputError(() => parseTargetUrl(input), 'credentials_in_url');
  });

  it('quotes at most the first 100 characters of a bad input, and says how long it was', () => {
    const garbage = `not a url ${'x'.repeat(5_000)}`;
    const error = expectInputError(() => parseTargetUrl(garbage), 'invalid_url');
    expect(error.message).toBe(
      `not a valid absolute URL: ${JSON.stringify(garbage.slice(0, 100))}... (5010 characters)`,
    );
  });

  it('does not repeat the credentials in its message', () => {
    const error = expectInputError(() => parseTargetUrl('https://alice:s3cret@example.com/'), 'credentials_in_url');
    expect(error.message).not.toContain('s3cret');
    expect(error.message).toContain('example.com');
  });
});
