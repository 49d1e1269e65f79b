import type { Classification } from './errors.js';
import { parseRetryAfter } from './retry-after.js';

export interface ResponseFacts {
  status: number;
  /** Lower-case header names. */
  headers: Record<string, string | string[] | undefined>;
  /** The start of the body as text, for challenge markers; may be empty. */
  bodySnippet?: string;
}

/** Statuses that a later attempt may cure. */
const RECOVERABLE_STATUSES = new Set([408, 425, 429, 500, 502, 503, 504, 507, 509, 520, 521, 522, 523, 524, 529]);

/** Markers of a WAF or CAPTCHA challenge page: retrying these only digs the hole deeper. */
const CHALLENGE_BODY_MARKERS: ReadonlyArray<[RegExp, string]> = [
  [/g-recaptcha|hcaptcha|h-captcha|cf-turnstile|captcha-delivery|geo\.captcha/i, 'captcha'],
  [
    /cf-chl|Attention Required! \| Cloudflare|Just a moment\.\.\.|_Incapsula_Resource|px-captcha|Access Denied[\s\S]{0,200}Reference #/i,
    'waf_challenge',
  ],
];

function header(headers: ResponseFacts['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function challengeReason(facts: ResponseFacts): string | undefined {
  if (header(facts.headers, 'cf-mitigated') === 'challenge') return 'waf_challenge';
  const snippet = facts.bodySnippet ?? '';
  for (const [pattern, reason] of CHALLENGE_BODY_MARKERS) if (pattern.test(snippet)) return reason;
  return undefined;
}

/**
 * Classifies a response the server did send. Returns undefined for a success (2xx, and a 3xx
 * that was not followed such as 304). Every failure gets a reason code; HTTP statuses read
 * `http_<status>`.
 */
export function classifyResponse(facts: ResponseFacts, now: number = Date.now()): Classification | undefined {
  const { status } = facts;
  if (status >= 200 && status < 400) return undefined;
  if (status === 403 || status === 429) {
    const challenge = challengeReason(facts);
    if (challenge !== undefined) return { failureClass: 'compliance_blocked', reason: challenge, status };
  }
  if (RECOVERABLE_STATUSES.has(status)) {
    const retryAfterMs = parseRetryAfter(header(facts.headers, 'retry-after'), now);
    return { failureClass: 'recoverable', reason: `http_${status}`, status, retryAfterMs };
  }
  return { failureClass: 'non_recoverable', reason: `http_${status}`, status };
}

/** Error codes (Node's and got's) that mean "the network failed this time". */
const RECOVERABLE_CODES: Record<string, string> = {
  ETIMEDOUT: 'timeout',
  ESOCKETTIMEDOUT: 'timeout',
  ECONNRESET: 'connection_reset',
  ECONNREFUSED: 'connection_refused',
  ECONNABORTED: 'connection_reset',
  EPIPE: 'connection_reset',
  EHOSTUNREACH: 'host_unreachable',
  ENETUNREACH: 'host_unreachable',
  EAI_AGAIN: 'dns_temporary_failure',
  ERR_STREAM_PREMATURE_CLOSE: 'connection_reset',
  ERR_ROBOTS_UNAVAILABLE: 'robots_unavailable',
  /** The browser (or a page's renderer) died under a render job: another browser will try. */
  ERR_BROWSER_CRASHED: 'browser_crashed',
  /** No Chromium would start on this worker (for a render or a browser login): another worker may have one. */
  ERR_BROWSER_UNAVAILABLE: 'browser_unavailable',
};

/** Codes that no retry will change. */
const NON_RECOVERABLE_CODES: Record<string, string> = {
  ENOTFOUND: 'dns_not_found',
  ERR_TOO_MANY_REDIRECTS: 'too_many_redirects',
  ERR_INVALID_URL: 'invalid_url',
  ERR_UNSUPPORTED_PROTOCOL: 'invalid_url',
  ERR_BODY_TOO_LARGE: 'body_too_large',
  ERR_ADDRESS_NOT_ALLOWED: 'address_not_allowed',
  ERR_UNSAFE_REDIRECT: 'unsafe_redirect',
  ERR_ROBOTS_DISALLOWED: 'robots_disallowed',
  /** A render job's page turned out to be a download: browsers here download nothing. */
  ERR_DOWNLOAD_REFUSED: 'download_refused',
  CERT_HAS_EXPIRED: 'tls_certificate',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'tls_certificate',
  SELF_SIGNED_CERT_IN_CHAIN: 'tls_certificate',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'tls_certificate',
  ERR_TLS_CERT_ALTNAME_INVALID: 'tls_certificate',
};

/** OpenSSL's words for a handshake with no TLS version both sides speak. */
const TLS_VERSION_REFUSED = /alert protocol version|unsupported protocol/i;

/**
 * Classifies an error thrown before or while reading a response: timeouts, resets, refused
 * connections, DNS, redirect loops, body over the cap, refused addresses, malformed HTTP.
 * Unknown errors are recoverable: a retry is cheap, losing a page is not.
 */
export function classifyError(error: unknown): Classification {
  const { code, name, message } = (error ?? {}) as { code?: unknown; name?: unknown; message?: unknown };
  const codeText = typeof code === 'string' ? code : '';
  // OpenSSL says it in the message only (EPROTO): the site speaks no TLS version offered (1.2 and up).
  if (codeText === 'EPROTO' && typeof message === 'string' && TLS_VERSION_REFUSED.test(message))
    return { failureClass: 'non_recoverable', reason: 'tls_version' };
  const nonRecoverable = NON_RECOVERABLE_CODES[codeText];
  if (nonRecoverable !== undefined) return { failureClass: 'non_recoverable', reason: nonRecoverable };
  const recoverable = RECOVERABLE_CODES[codeText];
  if (recoverable !== undefined) return { failureClass: 'recoverable', reason: recoverable };
  if (name === 'TimeoutError') return { failureClass: 'recoverable', reason: 'timeout' };
  if (codeText.startsWith('HPE_')) return { failureClass: 'recoverable', reason: 'protocol_error' };
  return { failureClass: 'recoverable', reason: 'network_error' };
}
