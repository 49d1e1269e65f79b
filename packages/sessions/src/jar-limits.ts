/**
 * Bounds on a session's cookie jar, as browsers keep them (Chrome: 180 cookies per domain,
 * 3,000 in all, 4 KiB each), so a hostile site cannot grow a session without limit: a jar of
 * thousands of cookies makes every slate large, every request's Cookie header too long for
 * servers (Node's default is 16 KiB), and every read slow.
 */
export const JAR_LIMITS = {
  perDomain: 180,
  total: 3000,
  /** Name and value of one cookie. */
  cookieBytes: 4096,
  /** Names and values of the whole jar. */
  jarBytes: 512 * 1024,
  /** The Cookie header a request carries: the most specific and oldest cookies first, as sent. */
  headerBytes: 8192,
} as const;

/** The fields of a cookie that the limits look at: tough-cookie's serialization, or a Cookie itself. */
interface StoredCookie {
  key?: unknown;
  value?: unknown;
  domain?: unknown;
  creation?: unknown;
}

const size = (cookie: StoredCookie) => String(cookie.key ?? '').length + String(cookie.value ?? '').length;
/** A stored cookie's creation (an ISO string) or a live one's (a Date), in ms; 0 when unknown. */
const created = (cookie: StoredCookie) => {
  const { creation } = cookie;
  const at =
    creation instanceof Date ? creation.getTime() : typeof creation === 'string' ? Date.parse(creation) : Number.NaN;
  return Number.isNaN(at) ? 0 : at;
};

/**
 * Keeps a jar within `JAR_LIMITS`: the oldest cookies go first (per domain, then in all, then
 * by bytes), and cookies larger than a cookie may be go at once. Iterative, whatever the count.
 */
export function boundCookies<T extends StoredCookie>(cookies: readonly T[]): { kept: T[]; evicted: number } {
  const fits = cookies.filter((cookie) => size(cookie) <= JAR_LIMITS.cookieBytes);
  // Newest first: what is kept is a prefix of each ordering.
  const newest = [...fits].sort((a, b) => created(b) - created(a));
  const perDomain = new Map<string, number>();
  const kept: T[] = [];
  let bytes = 0;
  for (const cookie of newest) {
    const domain = String(cookie.domain ?? '');
    const count = perDomain.get(domain) ?? 0;
    if (count >= JAR_LIMITS.perDomain || kept.length >= JAR_LIMITS.total) continue;
    if (bytes + size(cookie) > JAR_LIMITS.jarBytes) continue;
    perDomain.set(domain, count + 1);
    bytes += size(cookie);
    kept.push(cookie);
  }
  // Back in the order they came: a jar's order is tough-cookie's business.
  const keep = new Set<T>(kept);
  return { kept: cookies.filter((cookie) => keep.has(cookie)), evicted: cookies.length - kept.length };
}

/** A Cookie header cut at the last whole cookie that fits `JAR_LIMITS.headerBytes`. */
export function boundCookieHeader(header: string): string {
  if (header.length <= JAR_LIMITS.headerBytes) return header;
  const end = header.lastIndexOf('; ', JAR_LIMITS.headerBytes);
  return end > 0 ? header.slice(0, end) : '';
}
