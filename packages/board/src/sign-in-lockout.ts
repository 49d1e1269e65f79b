import { createHash } from 'node:crypto';
import QuickLRU from 'quick-lru';
import type { ResolvedFailurePolicy } from './failure-policy.js';

/** Which limit a lock-out is on: the client's address, or the user name it signs in as. */
export type LockoutScope = 'address' | 'user';

/** The failed sign-ins of one address or one user name in its current window. */
interface Tally {
  /** Failures in the window, plus the sign-ins being checked right now (their reserved slots). */
  failures: number;
  windowStart: number;
  /** When the lock-out ends; 0 while there is none. */
  lockedUntil: number;
}

/** A locked-out address or user name: answer 429, and say when to come back. */
export interface Refusal {
  readonly verdict: 'refuse';
  readonly scope: LockoutScope;
  readonly retryAfterMs: number;
}

/** Go ahead and check the credentials; the slots this sign-in reserved go back to `settle`. */
export interface Admission {
  readonly verdict: 'go';
  readonly address: Tally;
  readonly user: Tally | undefined;
}

/** A lock-out that a failure has just started. */
export interface Lockout {
  readonly scope: LockoutScope;
  readonly failures: number;
  readonly retryAfterMs: number;
}

export interface Settlement {
  /** How long to hold a wrong answer back (the slow-down); 0 for a right one. */
  readonly delayMs: number;
  readonly lockouts: readonly Lockout[];
}

/** Longer user names are remembered by their hash, so a guesser's names cannot fill the memory. */
const MAX_KEPT_NAME = 128;

/**
 * Failed sign-ins per client address and per user name, in fixed windows, in this board process.
 * A sign-in takes its slot before its credentials are checked (`admit`), so parallel guesses
 * cannot race past the limit; a right one gives the slot back (`settle`). Reaching the limit locks
 * the address or the name out for one window, right password or not.
 */
export class SignInLockout {
  private readonly addresses: QuickLRU<string, Tally>;
  private readonly users: QuickLRU<string, Tally>;

  constructor(private readonly policy: ResolvedFailurePolicy) {
    this.addresses = new QuickLRU({ maxSize: policy.maxTracked });
    this.users = new QuickLRU({ maxSize: policy.maxTracked });
  }

  /** The refusal for a request that tries no credentials: counted for nothing, refused while locked out. */
  check(address: string, now = Date.now()): Refusal | undefined {
    const tally = this.live(this.addresses, address, now);
    return tally === undefined ? undefined : this.refusalOf(tally, 'address', now);
  }

  /** Refuses a locked-out address or user name; otherwise reserves one failure on each. */
  admit(address: string, user: string | undefined, now = Date.now()): Admission | Refusal {
    const addressTally = this.tally(this.addresses, address, now);
    const userTally = user === undefined ? undefined : this.tally(this.users, userKey(user), now);
    const refusals = [
      this.refusalOf(addressTally, 'address', now),
      userTally === undefined ? undefined : this.refusalOf(userTally, 'user', now),
    ].filter((refusal) => refusal !== undefined);
    if (refusals.length > 0)
      return refusals.reduce((longest, refusal) => (refusal.retryAfterMs > longest.retryAfterMs ? refusal : longest));
    addressTally.failures++;
    if (userTally !== undefined) userTally.failures++;
    return { verdict: 'go', address: addressTally, user: userTally };
  }

  /** A right sign-in gives its slots back; a wrong one keeps them, and may start a lock-out. */
  settle(admission: Admission, succeeded: boolean, now = Date.now()): Settlement {
    const { address, user } = admission;
    if (succeeded) {
      address.failures = Math.max(0, address.failures - 1);
      if (user !== undefined) user.failures = Math.max(0, user.failures - 1);
      return { delayMs: 0, lockouts: [] };
    }
    const lockouts: Lockout[] = [];
    for (const [scope, tally, limit] of [
      ['address', address, this.policy.maxFailuresPerAddress],
      ['user', user, this.policy.maxFailuresPerUser],
    ] as const) {
      if (tally === undefined || tally.failures < limit || tally.lockedUntil !== 0) continue;
      tally.lockedUntil = now + this.policy.windowMs;
      lockouts.push({ scope, failures: tally.failures, retryAfterMs: this.policy.windowMs });
    }
    const { freeFailures, delayPerFailureMs, maxDelayMs } = this.policy;
    return {
      delayMs: Math.min(maxDelayMs, Math.max(0, address.failures - freeFailures) * delayPerFailureMs),
      lockouts,
    };
  }

  private refusalOf(tally: Tally, scope: LockoutScope, now: number): Refusal | undefined {
    if (tally.lockedUntil > now) return { verdict: 'refuse', scope, retryAfterMs: tally.lockedUntil - now };
    const limit = scope === 'address' ? this.policy.maxFailuresPerAddress : this.policy.maxFailuresPerUser;
    // Every slot is taken by sign-ins still being checked: none more until they settle or the window ends.
    if (tally.failures >= limit)
      return { verdict: 'refuse', scope, retryAfterMs: tally.windowStart + this.policy.windowMs - now };
    return undefined;
  }

  /** The key's tally in a window that is still running, if it has one. */
  private live(tallies: QuickLRU<string, Tally>, key: string, now: number): Tally | undefined {
    const tally = tallies.get(key);
    if (tally === undefined) return undefined;
    const over = tally.lockedUntil === 0 ? now - tally.windowStart >= this.policy.windowMs : tally.lockedUntil <= now;
    return over ? undefined : tally;
  }

  private tally(tallies: QuickLRU<string, Tally>, key: string, now: number): Tally {
    const live = this.live(tallies, key, now);
    if (live !== undefined) return live;
    const fresh = { failures: 0, windowStart: now, lockedUntil: 0 };
    tallies.set(key, fresh);
    return fresh;
  }
}

function userKey(user: string): string {
  return user.length <= MAX_KEPT_NAME ? `=${user}` : `#${createHash('sha256').update(user).digest('hex')}`;
}
