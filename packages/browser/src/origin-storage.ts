import type { OriginStorage } from '@crawlfleet/fetcher';

/** A context's origins as Playwright's storage state lists them. */
export interface StorageOrigin {
  origin: string;
  localStorage: Array<{ name: string; value: string }>;
}

/**
 * Puts an origin's stored items into its localStorage as its document starts, before any of the
 * page's scripts run. It runs in the page (an init script): only what it is given, nothing around it.
 */
export function restoreStorage(origins: Record<string, Array<{ name: string; value: string }>>): void {
  const page = globalThis as unknown as {
    location: { origin: string };
    localStorage: { setItem(name: string, value: string): void };
  };
  const entries = origins[page.location.origin];
  if (entries === undefined) return;
  try {
    for (const { name, value } of entries) page.localStorage.setItem(name, value);
  } catch {
    // A sandboxed frame or a full quota: the page runs without them.
  }
}

/** The session's stored origins as `restoreStorage` takes them. */
export function storageOrigins(
  stored: ReadonlyMap<string, OriginStorage>,
): Record<string, Array<{ name: string; value: string }>> {
  return Object.fromEntries([...stored].map(([origin, entries]) => [origin, entries.map((entry) => ({ ...entry }))]));
}

/** An origin's entries in one order, for comparing. */
function canonical(entries: OriginStorage): string {
  return JSON.stringify([...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)));
}

/** What the page changed in the session's origin storage. */
export interface StorageChanges {
  /** Origins whose storage changed (undefined: emptied). */
  changed: Map<string, OriginStorage | undefined>;
  /** Origins left out because their storage is larger than the limit. */
  tooLarge: string[];
}

/**
 * The origins whose localStorage a page changed, compared with what the session held: a new or
 * different origin is kept whole (the latest writer of an origin wins), an origin the page
 * emptied goes. An origin larger than `maxBytes` as JSON is not kept (and said).
 */
export function storageChanges(
  before: ReadonlyMap<string, OriginStorage>,
  after: readonly StorageOrigin[],
  maxBytes: number,
): StorageChanges {
  const changed = new Map<string, OriginStorage | undefined>();
  const tooLarge: string[] = [];
  for (const { origin, localStorage } of after) {
    const earlier = before.get(origin);
    if (localStorage.length === 0) {
      if (earlier !== undefined && earlier.length > 0) changed.set(origin, undefined);
      continue;
    }
    const now = canonical(localStorage);
    if (earlier !== undefined && canonical(earlier) === now) continue;
    if (now.length > maxBytes) tooLarge.push(origin);
    else changed.set(origin, localStorage);
  }
  return { changed, tooLarge };
}
