/**
 * Reads a Retry-After header: delta-seconds or an HTTP date. Returns milliseconds from `now`,
 * at least 0, or undefined when the header is absent or unreadable.
 */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // Only an HTTP-date (RFC 9110: `Sun, 06 Nov 1994 08:49:37 GMT`, or its obsolete forms) counts:
  // Date.parse accepts almost anything, including `-1` and `1.5`.
  if (!/^(Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,? /i.test(text)) return undefined;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}
