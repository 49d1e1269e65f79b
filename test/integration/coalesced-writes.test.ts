import { coalesceWrites, connectRedis } from '@crawlfleet/core';
import type { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanupPrefix, openTestRedis, REDIS_URL, uniquePrefix, waitFor } from '../src/harness.js';

type Counted = Redis['stream'] & { _write: (...args: unknown[]) => void; _writev: (...args: unknown[]) => void };

/** Counts the writes that reach the socket (each a system call): `_write` and `_writev` calls. */
function countSocketWrites(redis: Redis): { writes: number } {
  const counter = { writes: 0 };
  const stream = redis.stream as Counted;
  for (const method of ['_write', '_writev'] as const) {
    const original = stream[method].bind(stream);
    stream[method] = (...args: unknown[]) => {
      counter.writes++;
      original(...args);
    };
  }
  return counter;
}

const opened: Redis[] = [];
const prefix = uniquePrefix('coalesce');

afterEach(async () => {
  const admin = openTestRedis();
  await cleanupPrefix(admin, prefix);
  admin.disconnect();
  for (const redis of opened.splice(0)) redis.disconnect();
});

describe('coalesced writes', () => {
  it('send the commands of one turn of the event loop in one socket write, each answered in order', async () => {
    const redis = (await connectRedis(REDIS_URL, { role: 'worker' })) as Redis;
    opened.push(redis);
    coalesceWrites(redis);
    const counter = countSocketWrites(redis);
    const replies = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        i % 2 === 0
          ? redis.set(`${prefix}:k${i}`, String(i)).then(() => redis.get(`${prefix}:k${i}`))
          : redis.echo(`e${i}`),
      ),
    );
    // 25 SETs and 25 ECHOs in the first turn, then the 25 GETs in a later one.
    expect(counter.writes).toBe(2);
    expect(replies).toEqual(Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? String(i) : `e${i}`)));

    // Without it, every command is a write of its own.
    const plain = (await connectRedis(REDIS_URL, { role: 'worker' })) as Redis;
    opened.push(plain);
    const plainCounter = countSocketWrites(plain);
    await Promise.all(Array.from({ length: 10 }, (_, i) => plain.echo(`p${i}`)));
    expect(plainCounter.writes).toBeGreaterThan(1);
  });

  it('keep coalescing on the new socket after a reconnect', async () => {
    const redis = (await connectRedis(REDIS_URL, { role: 'worker' })) as Redis;
    opened.push(redis);
    coalesceWrites(redis);
    const before = redis.stream;
    const admin = openTestRedis();
    try {
      await admin.client('KILL', 'ID', String(await redis.client('ID')));
    } finally {
      admin.disconnect();
    }
    await waitFor(() => redis.status === 'ready' && redis.stream !== before, {
      timeoutMs: 10_000,
      what: 'the reconnect',
    });
    const counter = countSocketWrites(redis);
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => redis.echo(`r${i}`)));
    expect(replies).toEqual(Array.from({ length: 20 }, (_, i) => `r${i}`));
    expect(counter.writes).toBe(1);
  });
});
