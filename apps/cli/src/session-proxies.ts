import { InputError } from '@crawlfleet/core';
import { proxyId } from '@crawlfleet/crawler';
import type { SessionProfile } from '@crawlfleet/sessions';
import type { SessionListing, SlateStore } from '@crawlfleet/slates';

/** A listed session with the proxy its profile names. */
export interface ProxiedSession extends SessionListing {
  proxy: string;
}

/** The sessions of a listing that go through one proxy, and how many profiles could not be opened. */
export interface SessionsThrough {
  sessions: ProxiedSession[];
  /** Sessions skipped because their profile slate failed to open (another key, or damaged). */
  unreadable: number;
}

/** The suffix of a gateway listed with several users (`scheme://host:port#1a2b3c4d`). */
const USER_SUFFIX = /^#[0-9a-f]{8}$/;

/**
 * A `--proxy` value as profiles name a proxy: `scheme://host:port` (with its `#` suffix when one
 * gateway is listed with several users), the port made explicit as the config's URLs are
 * (`proxyId`), a trailing slash allowed. The value is never echoed: it may hold a password.
 */
export function parseProxyId(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InputError('invalid_proxy', '--proxy must be a proxy id: http://host:port or https://host:port');
  }
  if (url.username !== '' || url.password !== '')
    throw new InputError(
      'invalid_proxy',
      '--proxy must not hold credentials: give the proxy id, scheme://host:port (as sessions show names it)',
    );
  if (
    (url.protocol !== 'http:' && url.protocol !== 'https:') ||
    url.pathname !== '/' ||
    url.search !== '' ||
    (url.hash !== '' && !USER_SUFFIX.test(url.hash))
  )
    throw new InputError('invalid_proxy', '--proxy must be a proxy id: http://host:port or https://host:port');
  return `${proxyId(url.href)}${url.hash}`;
}

/**
 * The listed sessions whose profile names `proxy`. Only sessions that hold a profile are read,
 * one pipelined batch per few hundred (`SlateStore.readEach`).
 */
export async function sessionsThrough(
  store: SlateStore,
  listed: readonly SessionListing[],
  proxy: string,
): Promise<SessionsThrough> {
  const withProfile = listed.filter((listing) => listing.slates.includes('profile'));
  const profiles = await store.readEach(
    withProfile.map((listing) => store.session(listing.tenant, listing.sessionId)),
    'profile',
  );
  const sessions: ProxiedSession[] = [];
  let unreadable = 0;
  profiles.forEach((read, i) => {
    if (read.discarded !== undefined) {
      unreadable++;
      return;
    }
    const profile = read.value as SessionProfile | undefined;
    const listing = withProfile[i] as SessionListing;
    if (profile?.proxy === proxy) sessions.push({ ...listing, proxy });
  });
  return { sessions, unreadable };
}
