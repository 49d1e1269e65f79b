import { isIP } from 'node:net';
import type { SessionCookie } from '@crawlfleet/fetcher';

/** A cookie as Playwright gives and takes it (`expires` in seconds since the epoch, -1 for a session cookie). */
export interface BrowserCookie {
  name: string;
  value: string;
  domain: string;
  path: string;
  expires: number;
  httpOnly: boolean;
  secure: boolean;
  sameSite: 'Strict' | 'Lax' | 'None';
}

/** Why a session cookie was not put into a browser. */
export type DroppedCookie = 'expired' | 'malformed' | 'scope' | 'samesite';

/** Whether text holds what Chromium refuses in a cookie (control characters, DEL, and `others`). */
function refused(text: string, others: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f || others.includes(text[i] as string)) return true;
  }
  return false;
}
/** A host name as a cookie domain holds it (no leading dot: tough-cookie keeps it canonical). */
const HOST_NAME =
  /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/i;

const SAME_SITE = { strict: 'Strict', lax: 'Lax', none: 'None' } as const;

/**
 * The session's cookies as a browser context takes them, each checked first as a browser would
 * check it: expired ones, malformed ones (name, value, domain or path a browser refuses), ones
 * out of scope (`__Host-` and `__Secure-` prefixes without what they promise) and `SameSite=None`
 * without `Secure` (which Chromium rejects) are left out and counted by reason. A cookie without
 * a SameSite attribute goes in as `Lax`, as Chromium treats it.
 */
export function toBrowserCookies(
  cookies: readonly SessionCookie[],
  now: number = Date.now(),
): { cookies: BrowserCookie[]; dropped: Map<DroppedCookie, number> } {
  const kept: BrowserCookie[] = [];
  const dropped = new Map<DroppedCookie, number>();
  const drop = (reason: DroppedCookie) => dropped.set(reason, (dropped.get(reason) ?? 0) + 1);
  for (const cookie of cookies) {
    const expiry = cookie.expiryTime();
    if (expiry !== undefined && Number.isFinite(expiry) && expiry <= now) {
      drop('expired');
      continue;
    }
    const domain = cookie.domain ?? '';
    const path = cookie.path ?? '/';
    if (
      !cookie.key ||
      refused(cookie.key, ' ;=,') ||
      refused(cookie.value, ';') ||
      !path.startsWith('/') ||
      (isIP(domain) === 0 && !HOST_NAME.test(domain))
    ) {
      drop('malformed');
      continue;
    }
    const hostOnly = cookie.hostOnly !== false;
    if (
      (cookie.key.startsWith('__Secure-') && !cookie.secure) ||
      (cookie.key.startsWith('__Host-') && (!cookie.secure || !hostOnly || path !== '/'))
    ) {
      drop('scope');
      continue;
    }
    const sameSite = SAME_SITE[(cookie.sameSite ?? 'lax').toLowerCase() as keyof typeof SAME_SITE] ?? 'Lax';
    if (sameSite === 'None' && !cookie.secure) {
      drop('samesite');
      continue;
    }
    kept.push({
      name: cookie.key,
      value: cookie.value,
      // Playwright's form: a leading dot for a cookie of the domain and its subdomains.
      domain: hostOnly || isIP(domain) !== 0 ? domain : `.${domain}`,
      path,
      expires: expiry === undefined || !Number.isFinite(expiry) ? -1 : expiry / 1000,
      httpOnly: cookie.httpOnly,
      secure: cookie.secure,
      sameSite,
    });
  }
  return { cookies: kept, dropped };
}

/** A cookie's identity in a browser: name, domain (with its dot) and path. */
function identity(cookie: BrowserCookie): string {
  return `${cookie.name}\n${cookie.domain}\n${cookie.path}`;
}

/** Whether a server would see any difference: value, flags, or an expiry moved by a second or more. */
function same(a: BrowserCookie, b: BrowserCookie): boolean {
  return (
    a.value === b.value &&
    a.httpOnly === b.httpOnly &&
    a.secure === b.secure &&
    a.sameSite === b.sameSite &&
    (a.expires === b.expires || Math.abs(a.expires - b.expires) < 1)
  );
}

/** A cookie change as a server would have sent it, and the URL it applies to. */
export interface CookieSet {
  setCookie: string;
  url: string;
}

const EPOCH = 'Thu, 01 Jan 1970 00:00:00 GMT';

/**
 * What a page changed in a context's cookies, as Set-Cookie headers for the session's jar (its one
 * write path, the same as an HTTP response's): each cookie that is new or different after the
 * page, and a deletion for each that went. Cookies the page left as they were write nothing.
 */
export function cookieChanges(before: readonly BrowserCookie[], after: readonly BrowserCookie[]): CookieSet[] {
  const was = new Map(before.map((cookie) => [identity(cookie), cookie]));
  const changes: CookieSet[] = [];
  for (const cookie of after) {
    const earlier = was.get(identity(cookie));
    was.delete(identity(cookie));
    if (earlier !== undefined && same(earlier, cookie)) continue;
    changes.push(asSetCookie(cookie));
  }
  for (const gone of was.values()) changes.push(asSetCookie({ ...gone, value: '' }, EPOCH));
  return changes;
}

function asSetCookie(cookie: BrowserCookie, expires?: string): CookieSet {
  const host = cookie.domain.startsWith('.') ? cookie.domain.slice(1) : cookie.domain;
  const parts = [`${cookie.name}=${cookie.value}`, `Path=${cookie.path}`];
  if (cookie.domain.startsWith('.')) parts.push(`Domain=${host}`);
  const at = expires ?? (cookie.expires > 0 ? new Date(cookie.expires * 1000).toUTCString() : undefined);
  if (at !== undefined) parts.push(`Expires=${at}`);
  if (cookie.secure) parts.push('Secure');
  if (cookie.httpOnly) parts.push('HttpOnly');
  parts.push(`SameSite=${cookie.sameSite}`);
  const hostPart = isIP(host) === 6 ? `[${host}]` : host;
  return { setCookie: parts.join('; '), url: `${cookie.secure ? 'https' : 'http'}://${hostPart}${cookie.path}` };
}
