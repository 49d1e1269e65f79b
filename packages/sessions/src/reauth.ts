import { randomUUID } from 'node:crypto';
import { RecoverableError } from '@crawlfleet/failures';
import { type AuthState, type JobSession, normalizeAuth } from './job-session.js';

export interface RenewOptions {
  /** How long the login lease is held; it must outlive the slowest login request. */
  leaseMs: number;
  /**
   * Whether the stored auth already answers this job's need, because another worker logged in,
   * refreshed, or was refused meanwhile. Default: it changed after this job read its session.
   */
  settled?: ((auth: AuthState | undefined) => boolean) | undefined;
}

export type RenewOutcome = 'renewed' | 'reused';

/**
 * Renews a session's login (a login, or a token refresh) once across the fleet. The worker that
 * takes the session's short lease runs `renew` and commits what it returns (a login, or a
 * refused one) with the cookies it set; the others poll the auth slate and take up what that
 * worker wrote. Nobody waits longer than twice the lease: then the job is retried later instead
 * of holding a worker slot.
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
  // Compared by time, not by slate version: an auth slate that expired and was written again
  // starts its versions over.
  const done = settled ?? ((auth) => auth !== undefined && Date.parse(auth.changedAt) >= session.openedAt);
  const someoneRenewed = async () => done(normalizeAuth((await store.read(session.keys, ['auth'])).get('auth')?.value));
  const token = randomUUID();
  const deadline = Date.now() + 2 * leaseMs;
  while (Date.now() < deadline) {
    if (await store.tryAuthLease(session.keys, token, leaseMs)) {
      try {
        // Another worker may have finished between our read and our lease.
        if (await someoneRenewed()) {
          await session.refresh();
          return 'reused';
        }
        await run();
        return 'renewed';
      } finally {
        await store.releaseAuthLease(session.keys, token).catch(() => false);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 100));
    if (await someoneRenewed()) {
      await session.refresh();
      return 'reused';
    }
  }
  throw new RecoverableError(
    'reauth_wait_timeout',
    `waited ${2 * leaseMs} ms for another worker to log session ${session.hashedId} in`,
  );
}
