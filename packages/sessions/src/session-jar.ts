import { derivedFrom } from '@crawlfleet/slates';
import { Cookie, CookieJar, canonicalDomain, defaultPath, type MemoryCookieStore } from 'tough-cookie';
import { boundCookieHeader, boundCookies, JAR_LIMITS } from './jar-limits.js';

/** Trackers that are never worth keeping in a session (exact names, or prefixes ending in `*`). */
export const TRACKING_COOKIES: readonly string[] = [
  '_ga',
  '_ga_*',
  '_gid',
  '_gat*',
  '_gcl_*',
  '_fbp',
  '_fbc',
  'utm_*',
  '__utm*',
  '_hj*',
  '_uetsid',
  '_uetvid',
];

/** True when `name` matches one of `patterns` (exact, or a prefix ending in `*`). */
export function matchesCookiePattern(name: string, patterns: readonly string[]): boolean {
  return patterns.some((pattern) => (pattern.endsWith('*') ? name.startsWith(pattern.slice(0, -1)) : name === pattern));
}

/**
 * The field a cookie is stored under in the session's cookies slate: its identity as a browser
 * keeps it (domain, path, name), so the latest Set-Cookie of a cookie replaces it.
 */
export function cookieField(cookie: { domain?: string | null; path?: string | null; key?: string }): string {
  return `${cookie.domain ?? ''};${cookie.path ?? '/'};${cookie.key ?? ''}`;
}

/**
 * What a job writes to the cookies slate: the cookies it changed (tough-cookie's, stored as
 * their `toJSON()` form), and those that went.
 */
export interface CookieWrites {
  set: Array<readonly [string, Cookie]>;
  unset: string[];
}

/** One Set-Cookie this job received, kept so it can be replayed onto a newer jar. */
export interface CookieChange {
  setCookie: string;
  url: string;
  /** When it was received: replayed with the same clock, Max-Age gives the same expiry. */
  at: number;
}

/** What hydration found in a stored jar. */
export interface JarHydration {
  jar: SessionCookieJar;
  /** Expired or malformed cookies dropped on the way in. */
  dropped: number;
}

/**
 * A jar built from a frozen slate value (the slate store's opened slates, shared by every job of
 * a session while the stored jar is unchanged), and what was worked out from it once: a frozen
 * value never changes, so neither does its jar (a job copies it before its first change).
 */
interface SharedJar {
  jar: CookieJar;
  /** How many cookies it was built with. */
  size: number;
  /** Its Cookie headers by URL (see `SharedHeaders`). */
  headers?: SharedHeaders | undefined;
  /**
   * Set-Cookie texts it already found to change nothing, by the URL's directory (which gives a
   * cookie without `Path` its path): a cookie that does not expire gets the same answer every
   * time, without being parsed again.
   */
  unchanged?: Map<string, Cookie> | undefined;
}

/** Cookie headers worked out from one shared jar, good until its first cookie expires. */
interface SharedHeaders {
  until: number;
  /** Every cookie is for path `/`: the header depends on the scheme and host only. */
  rootOnly: boolean;
  /** How many of the jar's cookies have each name. */
  names: Map<string, number>;
  byKey: Map<string, string>;
}

/** A jar of at most this many cookies is within every `JAR_LIMITS` bound by construction. */
const BOUNDED_BELOW = Math.min(JAR_LIMITS.perDomain, Math.floor(JAR_LIMITS.jarBytes / (JAR_LIMITS.cookieBytes + 1)));

/** Headers kept per shared jar: a crawl's hosts, not its URLs. */
const MAX_SHARED_HEADERS = 64;

interface SerializedJar {
  cookies?: unknown[];
  [field: string]: unknown;
}

/**
 * The cookie jar a job fetches with: a tough-cookie jar (domain, path, expiry, Secure,
 * HttpOnly and SameSite semantics) that remembers which cookies this job set, so that when the
 * session's jar moved on meanwhile, those changes are replayed onto the newer jar instead of
 * overwriting it. It has the promise interface got expects of a `cookieJar`.
 */
export class SessionCookieJar {
  /** The jars of frozen slate values: built once, shared, copied by a job that sets a cookie. */
  private static readonly built = new WeakMap<object, SharedJar>();

  readonly changes: CookieChange[] = [];
  /** Fields (`cookieField`) of the cookies this job set, changed or deleted, to be written. */
  readonly changed = new Set<string>();
  /** Fields the stored slate holds that this jar left out (expired, over the limits): deleted. */
  readonly stale = new Set<string>();
  /** Cookies the server sent that tough-cookie refused (wrong domain, malformed, too large, ...). */
  rejected = 0;
  /** Cookies dropped to keep the jar within `JAR_LIMITS` (oldest first). */
  evicted = 0;

  private current: CookieJar;
  /** At most how many cookies the jar holds (what it was built with, plus every one set since). */
  private size = 0;
  /** The copy of a shared jar being made, for callers that arrive while it is made. */
  private copying: Promise<CookieJar> | undefined;
  /** Set while `current` is a shared jar: other jobs read it, so this one copies it before its first change. */
  private shared: SharedJar | undefined;

  /** `shared`: other jobs read `jar` too, so this one copies it before its first change. */
  constructor(jar: CookieJar = new CookieJar(), shared = false) {
    this.current = jar;
    if (shared) {
      // Of a jar made elsewhere, the number of cookies is not known.
      this.shared = { jar, size: Number.POSITIVE_INFINITY };
      this.size = Number.POSITIVE_INFINITY;
    }
  }

  /** A job's view of a shared jar. */
  private static sharing(shared: SharedJar): SessionCookieJar {
    const view = new SessionCookieJar(shared.jar);
    view.shared = shared;
    view.size = shared.size;
    return view;
  }

  /** The tough-cookie jar, to read; changes go through `setCookie`. */
  get jar(): CookieJar {
    return this.current;
  }

  /**
   * A jar from a stored slate value: the cookies slate's fields (one cookie each), or the one
   * serialized jar of older versions. Expired and malformed cookies are dropped and counted.
   */
  static async fromSlate(value: unknown, now: number = Date.now()): Promise<JarHydration> {
    if (value === undefined || value === null || typeof value !== 'object')
      return { jar: new SessionCookieJar(), dropped: 0 };
    const built = SessionCookieJar.built.get(value);
    // Cookies that expired since are left out by tough-cookie when it reads the jar.
    if (built !== undefined) return { jar: SessionCookieJar.sharing(built), dropped: 0 };
    const derived = await SessionCookieJar.derive(value);
    if (derived !== undefined) return { jar: derived, dropped: 0 };
    const serialized = value as SerializedJar;
    const hydration = await SessionCookieJar.build(
      Array.isArray(serialized.cookies) ? serialized : { cookies: Object.values(value) },
      now,
    );
    if (Object.isFrozen(value)) {
      const shared = { jar: hydration.jar.current, size: hydration.jar.size };
      SessionCookieJar.built.set(value, shared);
      hydration.jar.shared = shared;
    }
    return hydration;
  }

  /**
   * The jar of a slate value this worker wrote itself, built on the jar of the value it was
   * made from: a copy of its index with the written cookies put and the deleted ones removed,
   * instead of every cookie parsed again (a hot session's jobs each change one cookie of many).
   */
  private static async derive(value: object): Promise<SessionCookieJar | undefined> {
    const derivation = derivedFrom(value);
    const from = derivation?.base.deref();
    const shared = from === undefined ? undefined : SessionCookieJar.built.get(from);
    if (derivation === undefined || shared === undefined) return undefined;
    const { jar: base, size } = shared;
    if (size + derivation.set.length > BOUNDED_BELOW) return undefined;
    const jar = await copyJar(base);
    const record = value as Record<string, unknown>;
    for (const field of derivation.unset) await jar.store.removeCookie(...splitField(field));
    let added = 0;
    const updated: Array<[Cookie | undefined, Cookie]> = [];
    for (const [field, written] of derivation.set) {
      // The cookie a job of this worker wrote is the one its jar held: no need to build it again.
      const cookie = written instanceof Cookie ? written : Cookie.fromJSON(record[field]);
      if (cookie === undefined || !cookie.key || !cookie.domain) continue;
      const [domain, path, key] = splitField(field);
      updated.push([(base.store as MemoryCookieStore).idx[domain]?.[path]?.[key], cookie]);
      await jar.store.putCookie(cookie);
      added++;
    }
    const derived: SharedJar = {
      jar,
      size: size + added,
      headers: derivation.unset.length === 0 ? SessionCookieJar.carryHeaders(shared, updated) : undefined,
    };
    SessionCookieJar.built.set(value, derived);
    return SessionCookieJar.sharing(derived);
  }

  /**
   * The Cookie headers of a derived jar from those of the jar it came from, when all the write
   * did was give cookies new values (same name, domain, path and flags, not expired, and no other
   * cookie of the same name): each header then differs by those values alone, in the same place
   * (tough-cookie orders cookies by path and creation, which an update keeps).
   */
  private static carryHeaders(
    base: SharedJar,
    updated: ReadonlyArray<[Cookie | undefined, Cookie]>,
  ): SharedHeaders | undefined {
    const memo = base.headers;
    const now = Date.now();
    if (memo === undefined || now >= memo.until) return undefined;
    let until = memo.until;
    const swaps = new Map<string, string>();
    for (const [before, after] of updated) {
      const expiry = after.expiryTime();
      if (
        before === undefined ||
        memo.names.get(after.key) !== 1 ||
        before.hostOnly !== after.hostOnly ||
        before.secure !== after.secure ||
        before.httpOnly !== after.httpOnly ||
        (before.sameSite ?? 'none') !== (after.sameSite ?? 'none') ||
        (expiry !== undefined && expiry <= now)
      )
        return undefined;
      if (expiry !== undefined) until = Math.min(until, expiry);
      swaps.set(before.cookieString(), after.cookieString());
    }
    const byKey = new Map<string, string>();
    for (const [key, header] of memo.byKey)
      byKey.set(
        key,
        header === ''
          ? header
          : header
              .split('; ')
              .map((pair) => swaps.get(pair) ?? pair)
              .join('; '),
      );
    return { until, rootOnly: memo.rootOnly, names: memo.names, byKey };
  }

  private static async build(serialized: SerializedJar, now: number): Promise<JarHydration> {
    const stored = Array.isArray(serialized.cookies) ? serialized.cookies : [];
    const valid: Cookie[] = [];
    const stale: string[] = [];
    for (const entry of stored) {
      const cookie = Cookie.fromJSON(entry);
      // Every cookie a jar stores has a name and a domain; anything else is not one of ours.
      if (cookie === undefined || !cookie.key || !cookie.domain) continue;
      const expiry = cookie.expiryTime();
      if (expiry === undefined || expiry > now) valid.push(cookie);
      else stale.push(cookieField(cookie));
    }
    const { kept, evicted } = boundCookies(valid);
    // One cookie at a time, never tough-cookie's deserialize: its callback chain recurses once
    // per cookie and overflows the stack on a jar of a few thousand.
    const jar = new CookieJar();
    for (const cookie of kept) await jar.store.putCookie(cookie);
    const hydrated = new SessionCookieJar(jar);
    hydrated.evicted = evicted;
    hydrated.size = kept.length;
    if (evicted > 0) {
      const keep = new Set(kept);
      for (const cookie of valid) if (!keep.has(cookie)) stale.push(cookieField(cookie));
    }
    for (const field of stale) hydrated.stale.add(field);
    return { jar: hydrated, dropped: stored.length - valid.length };
  }

  async getCookieString(url: string): Promise<string> {
    // A session with no cookie yet (most new sessions' first pages) sends none.
    if (this.size === 0) return '';
    const header = this.shared
      ? await SessionCookieJar.sharedHeader(this.shared, url)
      : await this.current.getCookieString(url);
    return boundCookieHeader(header);
  }

  private static async sharedHeader(shared: SharedJar, url: string): Promise<string> {
    const now = Date.now();
    const { jar } = shared;
    let memo = shared.headers;
    if (memo === undefined || now >= memo.until) {
      const cookies = await jar.store.getAllCookies();
      const names = new Map<string, number>();
      for (const cookie of cookies) names.set(cookie.key, (names.get(cookie.key) ?? 0) + 1);
      memo = {
        until: Math.min(...cookies.map((cookie) => cookie.expiryTime() ?? Number.POSITIVE_INFINITY)),
        rootOnly: cookies.every((cookie) => cookie.path === '/'),
        names,
        byKey: new Map(),
      };
      shared.headers = memo;
    }
    const key = memo.rootOnly ? origin(url) : url.replace(/[?#].*$/s, '');
    const known = memo.byKey.get(key);
    if (known !== undefined) return known;
    const header = await jar.getCookieString(url);
    if (memo.byKey.size < MAX_SHARED_HEADERS) memo.byKey.set(key, header);
    return header;
  }

  /**
   * The jar to change: this job's own copy once it changes a shared one. got sets a response's
   * cookies concurrently, so every caller waits for the one copy instead of making its own.
   */
  private writable(): Promise<CookieJar> {
    if (!this.shared) return Promise.resolve(this.current);
    this.copying ??= copyJar(this.current).then((copy) => {
      this.current = copy;
      this.shared = undefined;
      return copy;
    });
    return this.copying;
  }

  async setCookie(setCookie: string, url: string): Promise<unknown> {
    // Name and value come before the first attribute; a cookie larger than a browser keeps is refused.
    const pair = setCookie.indexOf(';');
    if ((pair === -1 ? setCookie.length : pair) > JAR_LIMITS.cookieBytes + 1) {
      this.rejected++;
      return undefined;
    }
    // Trackers never reach a stored jar (setting one would only copy the jar and write nothing):
    // known by name, they are not even parsed. A Set-Cookie without `name=` before its first
    // attribute is refused by the parse below anyway.
    const eq = setCookie.indexOf('=');
    if (eq > 0 && eq < (pair === -1 ? setCookie.length : pair))
      if (matchesCookiePattern(setCookie.slice(0, eq).trim(), TRACKING_COOKIES)) return undefined;
    const shared = this.shared;
    const seen = shared?.unchanged;
    const memoKey = shared !== undefined ? `${directoryOf(url)}\n${setCookie}` : '';
    const known = seen?.get(memoKey);
    if (known !== undefined) return known;
    const at = Date.now();
    const parsed = Cookie.parse(setCookie);
    if (parsed === undefined) {
      this.rejected++;
      return undefined;
    }
    const same = await this.sameAsStored(parsed, url, at);
    if (same !== undefined) {
      // Only a cookie that never expires: a sliding expiry's answer depends on the time.
      if (shared !== undefined && !Number.isFinite(parsed.expiryTime(new Date(at)) ?? Number.POSITIVE_INFINITY)) {
        shared.unchanged ??= new Map<string, Cookie>();
        if (shared.unchanged.size < MAX_SHARED_HEADERS) shared.unchanged.set(memoKey, same);
      }
      return same;
    }
    try {
      const cookie = await (await this.writable()).setCookie(parsed, url, { now: new Date(at) });
      if (cookie !== undefined) {
        this.changes.push({ setCookie, url, at });
        this.changed.add(cookieField(cookie));
        this.size++;
      }
      return cookie;
    } catch {
      this.rejected++;
      return undefined;
    }
  }

  /**
   * The stored cookie when a Set-Cookie changes nothing a server would see: the same name,
   * domain and path, value and flags, and an expiry that moved by less than a tenth of its
   * lifetime (a sliding session refreshed on every response). Most responses of a site in use
   * re-send what the jar holds: such a Set-Cookie copies no shared jar and commits nothing.
   */
  private async sameAsStored(parsed: Cookie, url: string, at: number): Promise<Cookie | undefined> {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      return undefined;
    }
    const domain = canonicalDomain(parsed.domain ?? target.hostname);
    const path = parsed.path?.startsWith('/') ? parsed.path : defaultPath(target.pathname);
    if (domain === undefined || domain === null) return undefined;
    const stored = await this.current.store.findCookie(domain, path, parsed.key);
    if (
      stored === undefined ||
      stored.value !== parsed.value ||
      stored.hostOnly !== (parsed.domain === null || parsed.domain === undefined) ||
      stored.secure !== parsed.secure ||
      stored.httpOnly !== parsed.httpOnly ||
      (stored.sameSite ?? 'none') !== (parsed.sameSite ?? 'none')
    )
      return undefined;
    const before = stored.expiryTime();
    const after = parsed.expiryTime(new Date(at));
    if (before === after) return stored;
    if (before === undefined || after === undefined) return undefined;
    // A deletion (an expiry in the past) is always a change.
    if (after <= at) return undefined;
    return Math.abs(after - before) < (after - at) / 10 ? stored : undefined;
  }

  /** Every cookie the jar holds that has not expired (what a browser context starts with). */
  async liveCookies(now: number = Date.now()): Promise<Cookie[]> {
    if (this.size === 0) return [];
    const all = await this.current.store.getAllCookies();
    return all.filter((cookie) => {
      const expiry = cookie.expiryTime();
      return expiry === undefined || expiry > now;
    });
  }

  /** Replays this job's cookie changes onto a newer jar (the same checks apply again). */
  async replayOnto(newer: SessionCookieJar): Promise<SessionCookieJar> {
    for (const change of this.changes) {
      try {
        const cookie = await (await newer.writable()).setCookie(change.setCookie, change.url, {
          now: new Date(change.at),
        });
        if (cookie !== undefined) {
          newer.changed.add(cookieField(cookie));
          newer.size++;
        }
      } catch {
        newer.rejected++;
      }
    }
    for (const field of this.stale) newer.stale.add(field);
    return newer;
  }

  /**
   * What to write to the cookies slate: each cookie this job changed as it stands in the jar now
   * (absent: deleted or expired), tracking cookies (`extraTracking` too) never, and the cookies
   * the jar limits drop. With `all`, every cookie is written (a slate read in an older form).
   */
  async fieldWrites(extraTracking: readonly string[] = [], all = false): Promise<CookieWrites> {
    const patterns = extraTracking.length > 0 ? [...TRACKING_COOKIES, ...extraTracking] : TRACKING_COOKIES;
    const now = Date.now();
    const isLive = (cookie: Cookie) => {
      const expiry = cookie.expiryTime();
      return (expiry === undefined || expiry > now) && !matchesCookiePattern(cookie.key, patterns);
    };
    if (!all && this.size <= BOUNDED_BELOW) return this.changedWrites(isLive);
    const live = (await this.current.store.getAllCookies()).filter(isLive);
    // Fewer cookies than this (each at most `cookieBytes`) cannot break any limit.
    const { kept, evicted } = live.length > BOUNDED_BELOW ? boundCookies(live) : { kept: live, evicted: 0 };
    this.evicted += evicted;
    const byField = new Map(kept.map((cookie) => [cookieField(cookie), cookie]));
    const writes: CookieWrites = { set: [], unset: [] };
    const wanted = all
      ? new Set([...this.changed, ...byField.keys(), ...this.stale])
      : new Set([...this.changed, ...this.stale]);
    for (const cookie of live) if (!byField.has(cookieField(cookie))) wanted.add(cookieField(cookie));
    for (const field of wanted) {
      const cookie = byField.get(field);
      if (cookie === undefined) writes.unset.push(field);
      else writes.set.push([field, cookie]);
    }
    return writes;
  }

  /** The writes of the changed cookies alone, looked up one by one: a jar too small to bound. */
  private async changedWrites(isLive: (cookie: Cookie) => boolean): Promise<CookieWrites> {
    // A stale field this job set again is written, not deleted.
    const writes: CookieWrites = { set: [], unset: [...this.stale].filter((field) => !this.changed.has(field)) };
    for (const field of this.changed) {
      const cookie = await this.current.store.findCookie(...splitField(field));
      if (cookie !== undefined && cookie !== null && isLive(cookie)) writes.set.push([field, cookie]);
      else writes.unset.push(field);
    }
    return writes;
  }

  /** Forgets what was written: the jar now matches the stored slate. */
  written(): void {
    this.changes.length = 0;
    this.changed.clear();
    this.stale.clear();
  }

  /**
   * The slate value: tough-cookie's own serialization, without tracking cookies (the built-in
   * list and `extraTracking`), which are stripped before a jar is ever stored.
   */
  async toSlate(extraTracking: readonly string[] = []): Promise<unknown> {
    const serialized = await this.jar.serialize();
    const patterns = [...TRACKING_COOKIES, ...extraTracking];
    const wanted = serialized.cookies.filter((cookie) => !matchesCookiePattern(String(cookie.key ?? ''), patterns));
    const { kept, evicted } = boundCookies(wanted);
    this.evicted += evicted;
    return { ...serialized, cookies: kept };
  }

  /** Cookie names, domains, paths and expiry, never values: for `sessions show`. */
  async describe(): Promise<
    Array<{
      name: string;
      domain: string | null;
      path: string | null;
      expires: string | null;
      secure: boolean;
      httpOnly: boolean;
    }>
  > {
    const serialized = await this.jar.serialize();
    return serialized.cookies.map((entry) => {
      const cookie = Cookie.fromJSON(entry);
      const expiry = cookie?.expiryTime();
      return {
        name: cookie?.key ?? '',
        domain: cookie?.domain ?? null,
        path: cookie?.path ?? null,
        expires: expiry === undefined || !Number.isFinite(expiry) ? null : new Date(expiry).toISOString(),
        secure: cookie?.secure ?? false,
        httpOnly: cookie?.httpOnly ?? false,
      };
    });
  }
}

/** A URL up to the last `/` of its path: what a cookie without `Path` is scoped by. */
function directoryOf(url: string): string {
  const end = url.search(/[?#]/);
  const base = end === -1 ? url : url.slice(0, end);
  return base.slice(0, base.lastIndexOf('/') + 1);
}

/** A cookie field's domain, path and name (neither a domain nor a path holds a `;`). */
function splitField(field: string): [string, string, string] {
  const first = field.indexOf(';');
  const second = field.indexOf(';', first + 1);
  return [field.slice(0, first), field.slice(first + 1, second), field.slice(second + 1)];
}

/**
 * A copy of a jar's index (domain, path, name), sharing its cookies: tough-cookie replaces a
 * cookie it sets rather than change it, so the copy's changes never reach the shared jar. Never
 * tough-cookie's clone, which recurses once per cookie and serializes each one.
 */
async function copyJar(jar: CookieJar): Promise<CookieJar> {
  const copy = new CookieJar();
  const source = (jar.store as MemoryCookieStore).idx;
  const target = (copy.store as MemoryCookieStore).idx;
  for (const [domain, paths] of Object.entries(source)) {
    const copied: Record<string, Record<string, Cookie>> = Object.create(null);
    for (const [path, cookies] of Object.entries(paths)) copied[path] = Object.assign(Object.create(null), cookies);
    target[domain] = copied;
  }
  return copy;
}

/** `scheme://authority` of a URL, as written (a differently written host only misses the memo). */
function origin(url: string): string {
  const start = url.indexOf('//');
  if (start < 0) return url;
  const end = url.slice(start + 2).search(/[/?#]/);
  return end < 0 ? url : url.slice(0, start + 2 + end);
}
