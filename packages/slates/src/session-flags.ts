import type { RedisClient, SessionKeys } from '@crawlfleet/core';
import { luaSource } from './lua-source.js';
import { FIXED_SLATES } from './slate-rules.js';

const RELEASE_LEASE = luaSource('release-lease.lua');
const CLEAR_SESSION = luaSource('clear-session.lua');
const REBIND_SESSION = luaSource('rebind-session.lua');

type WithScripts = RedisClient & {
  cfReleaseLease(key: string, token: string): Promise<number>;
  cfClearSession(numKeys: number, ...args: Array<string | number>): Promise<number>;
  cfRebindSession(numKeys: number, ...args: Array<string | number>): Promise<number>;
};

/** Defines the session-clearing script on a connection (the flags and the admin share it). */
export function withClearSession(redis: RedisClient): RedisClient & Pick<WithScripts, 'cfClearSession'> {
  if (!('cfClearSession' in redis)) redis.defineCommand('cfClearSession', { lua: CLEAR_SESSION });
  return redis as WithScripts;
}

/**
 * Deletes a session's keys through its index, in one script: with `quarantineMs`, the
 * quarantine flag is set in the same step and kept; without, the flags go too (a purge).
 */
export function clearSession(redis: RedisClient, session: SessionKeys, quarantineMs = 0): Promise<number> {
  // Deleted by name as well as through the index: sessions written before it existed have none.
  const known = FIXED_SLATES.map((name) => session.slate(name));
  const flags = [session.authLease, session.rateLimited, session.breaker, session.breakerProbe];
  // The quarantine flag comes last: a quarantine sets it, a purge deletes it.
  const keys = [session.index, ...known, ...flags, session.quarantine];
  return withClearSession(redis).cfClearSession(
    keys.length,
    ...keys,
    session.base,
    quarantineMs > 0 ? Math.max(1, Math.round(quarantineMs)) : 0,
    new Date().toISOString(),
  );
}

/**
 * What a session carries besides its slates: the quarantine after a compliance block, the count
 * of its recent 429 answers, and the lease one worker holds while it logs the session in.
 */
export class SessionFlags {
  private readonly redis: WithScripts;

  /** `written` is told before this worker writes keys a hydrate reads (it drops what it kept). */
  constructor(
    redis: RedisClient,
    private readonly written: (session: SessionKeys) => void = () => undefined,
  ) {
    if (!('cfReleaseLease' in redis)) redis.defineCommand('cfReleaseLease', { numberOfKeys: 1, lua: RELEASE_LEASE });
    if (!('cfRebindSession' in redis)) redis.defineCommand('cfRebindSession', { lua: REBIND_SESSION });
    this.redis = withClearSession(redis) as WithScripts;
  }

  /**
   * Quarantines a session: deletes every slate (its cookies and login are burnt) and sets the
   * quarantine flag for `ms`, in one script.
   */
  async quarantine(session: SessionKeys, ms: number): Promise<void> {
    this.written(session);
    await clearSession(this.redis, session, ms);
    // Again: a hydrate of this worker may have been answered meanwhile.
    this.written(session);
  }

  /**
   * Burns a session's identity after its proxy failed (`rebind-session.lua`): its slates and login
   * lease go, unless its profile is no longer at `profileVersion` (another job did it). True when
   * this call did.
   */
  async rebind(session: SessionKeys, profileVersion: number): Promise<boolean> {
    const known = FIXED_SLATES.map((name) => session.slate(name)).filter((key) => key !== session.slate('profile'));
    const keys = [session.index, session.slate('profile'), ...known, session.authLease];
    this.written(session);
    const burnt = await this.redis.cfRebindSession(keys.length, ...keys, session.base, profileVersion);
    this.written(session);
    return burnt === 1;
  }

  /** Counts a 429 for the session within a sliding window; returns the count so far. */
  async countRateLimited(session: SessionKeys, windowMs: number): Promise<number> {
    const answers = await this.redis
      .multi()
      .incr(session.rateLimited)
      .pexpire(session.rateLimited, windowMs, 'NX')
      .exec();
    return Number(answers?.[0]?.[1] ?? 0);
  }

  /** Takes the session's login lease for `ms` unless someone holds it. */
  async tryAuthLease(session: SessionKeys, token: string, ms: number): Promise<boolean> {
    return (await this.redis.set(session.authLease, token, 'PX', ms, 'NX')) === 'OK';
  }

  /** Gives the lease back, if this token still holds it. */
  async releaseAuthLease(session: SessionKeys, token: string): Promise<boolean> {
    return (await this.redis.cfReleaseLease(session.authLease, token)) === 1;
  }
}
