import { InputError } from './errors.js';

/**
 * Query parameters that only track where a visitor came from. Dropping them makes
 * `?id=1&utm_source=x` and `?id=1` the same page for deduplication.
 */
const TRACKING_PARAMS = new Set([
  'gclid',
  'gbraid',
  'wbraid',
  'dclid',
  'fbclid',
  'msclkid',
  'yclid',
  'igshid',
  'mc_cid',
  'mc_eid',
]);

export function isTrackingParam(name: string): boolean {
  const lower = name.toLowerCase();
  return lower.startsWith('utm_') || TRACKING_PARAMS.has(lower);
}

/** Input echoed in a message: quoted, and cut short so that a line of garbage stays one short line. */
function quoted(raw: string): string {
  if (raw.length <= 100) return JSON.stringify(raw);
  return `${JSON.stringify(raw.slice(0, 100))}... (${raw.length} characters)`;
}

/**
 * Parses a URL a person or a file gave us. Only absolute http(s) URLs without embedded
 * credentials are accepted: credentials in a URL would end up in job data, logs and results.
 */
export function parseTargetUrl(raw: string): URL {
  const text = raw.trim();
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new InputError('invalid_url', `not a valid absolute URL: ${quoted(raw)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InputError(
      'unsupported_scheme',
      `only http and https URLs can be crawled, got ${url.protocol.slice(0, -1)}: ${quoted(raw)}`,
    );
  }
  if (url.username !== '' || url.password !== '') {
    throw new InputError(
      'credentials_in_url',
      `URLs with embedded credentials are refused (configure tenant auth instead): ${url.host}`,
    );
  }
  if (url.hostname === '') {
    throw new InputError('invalid_url', `URL has no host: ${quoted(raw)}`);
  }
  return url;
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;

/** RFC 3986 6.2.2: upper-case percent-escapes and decode the ones that encode unreserved characters. */
function normalizePercentEncoding(text: string): string {
  return text.replace(/%([0-9A-Fa-f]{2})/g, (_match, hex: string) => {
    const char = String.fromCharCode(Number.parseInt(hex, 16));
    return UNRESERVED.test(char) ? char : `%${hex.toUpperCase()}`;
  });
}

function decodeName(name: string): string {
  try {
    return decodeURIComponent(name.replace(/\+/g, ' '));
  } catch {
    return name;
  }
}

/** Sorted by name (stable, so repeated names keep their order), tracking parameters removed. */
function canonicalQuery(search: string): string {
  if (search.length <= 1) return '';
  const pairs = search
    .slice(1)
    .split('&')
    .filter((pair) => pair !== '')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const name = eq === -1 ? pair : pair.slice(0, eq);
      return { name: normalizePercentEncoding(name), pair: normalizePercentEncoding(pair) };
    })
    .filter(({ name }) => !isTrackingParam(decodeName(name)));
  pairs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return pairs.length === 0 ? '' : `?${pairs.map(({ pair }) => pair).join('&')}`;
}

/**
 * The form of a URL used for idempotency keys: lower-case scheme and host (the WHATWG parser
 * does both, and punycodes IDNs), default port dropped, trailing dot of the host dropped,
 * fragment dropped, percent-escapes normalized, query sorted, tracking parameters removed.
 * The path keeps its trailing slash: `/a` and `/a/` are different resources.
 */
export function canonicalizeUrl(raw: string | URL): string {
  const url = typeof raw === 'string' ? parseTargetUrl(raw) : raw;
  const host = url.hostname.endsWith('.') ? url.hostname.slice(0, -1) : url.hostname;
  const port = url.port === '' ? '' : `:${url.port}`;
  const path = normalizePercentEncoding(url.pathname);
  return `${url.protocol}//${host}${port}${path}${canonicalQuery(url.search)}`;
}
