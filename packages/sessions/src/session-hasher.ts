import { createHmac, randomBytes } from 'node:crypto';
import type { RedisClient } from '@crawlfleet/core';

/**
 * Names a session in logs, audit events and metrics without naming it: an HMAC of tenant and
 * session id under a per-installation key, so a log shipped elsewhere cannot be matched against
 * guessed session ids (account names, e-mail addresses) without Redis.
 */
export class SessionHasher {
  constructor(private readonly key: Buffer) {}

  hash(tenant: string, sessionId: string): string {
    return createHmac('sha256', this.key).update(`${tenant}/${sessionId}`).digest('hex').slice(0, 16);
  }
}

/**
 * The installation's hasher. Its key lives in Redis (`keyName`), made by whichever process needs
 * it first (SET NX), so every worker and the CLI hash alike, and key rotation changes nothing.
 */
export async function loadSessionHasher(redis: RedisClient, keyName: string): Promise<SessionHasher> {
  await redis.set(keyName, randomBytes(32).toString('base64'), 'NX');
  const key = await redis.get(keyName);
  if (key === null) throw new Error(`the session hash key ${keyName} vanished`);
  return new SessionHasher(Buffer.from(key, 'base64'));
}
