import { randomUUID } from 'node:crypto';
import { RecoverableError } from '@crawlfleet/failures';
import type { AuthState, JobSession } from './job-session.js';

export interface ReauthOptions {
  /** How long a login is taken to last. */
  ttlSeconds: number;
  /** How long the login lease is held; it must outlive the slowest login request. */
  leaseMs: number;
}

export type ReauthOutcome = 'logged_in' | 'reused';

/**
 * Logs a session in again, once across the fleet. The worker that takes the session's short
 * lease logs in and commits the new cookies and auth slate; the others poll the auth slate and
 * take up the new login when its version moves. Nobody waits longer than twice the lease: then
 * the job is retried later instead of holding a worker slot.
 */
export async function reauthenticate(
  session: JobSession,
  login: () => Promise<void>,
  { ttlSeconds, leaseMs }: ReauthOptions,
): Promise<ReauthOutcome> {
  const store = session.store;
  const setAuth = async () => {
    await login();
    const now = Date.now();
    session.setAuth({
      loggedInAt: new Date(now).toISOString(),
      expiresAt: new Date(now + ttlSeconds * 1000).toISOString(),
    });
    await session.commit();
  };
  if (store === undefined || session.ephemeral) {
    await setAuth();
    return 'logged_in';
  }
  // Compared by time, not by slate version: an auth slate that expired and was written again
  // starts its versions over.
  const someoneLoggedIn = async () => {
    const auth = (await store.read(session.keys, ['auth'])).get('auth')?.value as AuthState | undefined;
    return (
      auth !== undefined && Date.parse(auth.loggedInAt) >= session.openedAt && Date.parse(auth.expiresAt) > Date.now()
    );
  };
  const token = randomUUID();
  const deadline = Date.now() + 2 * leaseMs;
  while (Date.now() < deadline) {
    if (await store.tryAuthLease(session.keys, token, leaseMs)) {
      try {
        // Another worker may have finished between our read and our lease.
        if (await someoneLoggedIn()) {
          await session.refresh();
          return 'reused';
        }
        await setAuth();
        return 'logged_in';
      } finally {
        await store.releaseAuthLease(session.keys, token).catch(() => false);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 100));
    if (await someoneLoggedIn()) {
      await session.refresh();
      return 'reused';
    }
  }
  throw new RecoverableError(
    'reauth_wait_timeout',
    `waited ${2 * leaseMs} ms for another worker to log session ${session.hashedId} in`,
  );
}
