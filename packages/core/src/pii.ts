import { isIP } from 'node:net';

/**
 * Personal data that stored results (when a tenant's `redactPii` is on) and logs (always) must
 * not keep: e-mail addresses, phone numbers, IPv4 and IPv6 addresses. The patterns favour
 * catching real data over sparing look-alikes; a date or a short number is left alone.
 */
const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g;
/** Candidates only: each is checked with `isIP`, so versions, dates and clock times survive. */
const IP_CANDIDATE = /(?<![\w:.])(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})(?![\w:]|\.\d)/g;
/** A run of digits with phone punctuation; kept as a phone only with 9-15 digits and a + or separators. */
const PHONE_CANDIDATE = /(?<![\w.+-])\+?\(?\d[\d\s().-]{6,}\d(?![\w-])/g;

/**
 * Cheap tests that each pattern's core can occur at all (no lookarounds, no replacement): most
 * pages and headers hold none of them, and every stored page goes through here.
 */
const MAY_HOLD_IP = /\d\.\d{1,3}\.\d|:[0-9A-Fa-f]{0,4}:/;
const MAY_HOLD_PHONE = /\d[\d\s().-]{6,}\d/;

function countDigits(text: string): number {
  let digits = 0;
  for (const char of text) if (char >= '0' && char <= '9') digits++;
  return digits;
}

function looksLikePhone(match: string): boolean {
  const digits = countDigits(match);
  return digits >= 9 && digits <= 15 && (match.startsWith('+') || /[\s().-]/.test(match));
}

/** Replaces e-mail addresses, phone numbers and IP addresses with `[email]`, `[phone]`, `[ip]`. */
export function redactPii(text: string): string {
  let redacted = text;
  if (redacted.includes('@')) redacted = redacted.replace(EMAIL, '[email]');
  if (MAY_HOLD_IP.test(redacted))
    redacted = redacted.replace(IP_CANDIDATE, (match) => (isIP(match) === 0 ? match : '[ip]'));
  if (MAY_HOLD_PHONE.test(redacted))
    redacted = redacted.replace(PHONE_CANDIDATE, (match) => (looksLikePhone(match) ? '[phone]' : match));
  return redacted;
}

/** `redactPii` over every string inside a JSON-like value (a copy; the input is left as is). */
export function redactPiiDeep<T>(value: T): T {
  if (typeof value === 'string') return redactPii(value) as T;
  if (Array.isArray(value)) return value.map((item) => redactPiiDeep(item)) as T;
  if (value !== null && typeof value === 'object') {
    const copy: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value)) copy[key] = redactPiiDeep(inner);
    return copy as T;
  }
  return value;
}
