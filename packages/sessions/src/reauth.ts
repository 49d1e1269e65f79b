import { randomUUID } from 'node:crypto';
import { RecoverableError } from '@crawlfleet/failures';
import type { JobSession } from './job-session.js';

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
  ttlSeconds: number,
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
  const leaseMs = session.config.reauthLeaseMs;
  const readVersion = session.version('auth');
  const someoneLoggedIn = async () =>
    ((await store.read(session.keys, ['auth'])).get('auth')?.version ?? 0) > readVersion;
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
