import { randomUUID } from 'node:crypto';
import { RecoverableError } from '@crawlfleet/failures';
import { type AuthState, normalizeAuth } from './auth-state.js';
import type { JobSession } from './job-session.js';

export interface RenewOptions {
  /** How long the login lease is held; it must outlive the slowest login. */
  leaseMs: number;
  /**
   * Whether the stored auth already answers this job's need: another worker logged in,
   * refreshed, or was refused since this job's request. Asked of what is stored now, never of
   * this job's own copy, and without comparing clocks of different workers.
   */
  settled: (stored: AuthState | undefined) => boolean;
}

export type RenewOutcome = 'renewed' | 'reused';

/**
 * Renews a session's login (a login, or a token refresh) once across the fleet. The worker that
 * takes the session's short lease reads the session again (what other workers wrote: a newer
 * login, a refresh token, a refusal and its count), and runs `renew` only when that does not
 * settle the matter; it commits what `renew` returns with the cookies it set. The others poll
 * the auth slate and take up what was written. Nobody waits longer than twice the lease: then
 * the job is retried later instead of holding a worker slot.
 */
export async function renewAuthOnce(
  session: JobSession,
  renew: () => Promise<AuthState>,
  { leaseMs, settled }: RenewOptions,
): Promise<RenewOutcome> {
  const store = session.store;
  const run = async () => {
    session.setAuth(await renew());
    await session.commit();
  };
  if (store === undefined || session.ephemeral) {
    await run();
    return 'renewed';
  }
  const token = randomUUID();
  const deadline = Date.now() + 2 * leaseMs;
  while (Date.now() < deadline) {
    if (await store.flags.tryAuthLease(session.keys, token, leaseMs)) {
      try {
        await session.refresh();
        if (settled(session.auth)) return 'reused';
        await run();
        return 'renewed';
      } finally {
        await store.flags.releaseAuthLease(session.keys, token).catch(() => false);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 100));
    if (settled(normalizeAuth((await store.read(session.keys, ['auth'])).get('auth')?.value))) {
      await session.refresh();
      return 'reused';
    }
  }
  throw new RecoverableError(
    'reauth_wait_timeout',
    `waited ${2 * leaseMs} ms for another worker to log session ${session.hashedId} in`,
  );
}
