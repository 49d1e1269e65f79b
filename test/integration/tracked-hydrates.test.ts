import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import type { SessionKeys } from '@crawlfleet/core';
import { openSessionRedis } from '@crawlfleet/core';
import { startRedisServer } from '@crawlfleet/local-redis';
import { type KeptHydrate, type SlateName, SlateStore, TrackedHydrates } from '@crawlfleet/slates';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { cleanupPrefix, keyLayout, openTestRedis, REDIS_URL, testRing, uniquePrefix, waitFor } from '../src/harness.js';

// What a worker hydrates for a tenant without a login hook.
const NAMES: readonly SlateName[] = ['cookies', 'profile', 'meta'];
const TTL_MS = 600_000;
const ring = testRing();

let admin: Redis;
let prefix: string;
let keys: ReturnType<typeof keyLayout>;
/** The worker under test: a session connection with tracking, and its store. */
let sessionRedis: Redis;
let tracked: TrackedHydrates<KeptHydrate>;
let store: SlateStore;
/** Another worker: its own connection and store, no tracking. */
let other: SlateStore;

beforeAll(() => {
  admin = openTestRedis();
});

afterAll(async () => {
  await admin.quit();
});

function startWorkerStore(url = REDIS_URL) {
  const redis = openSessionRedis(url);
  const hydrates = TrackedHydrates.start<KeptHydrate>(redis);
  return { redis, hydrates, store: new SlateStore(redis, keys, ring, { tracked: hydrates }) };
}

beforeEach(async () => {
  prefix = uniquePrefix('tracked');
  keys = keyLayout(prefix);
  ({ redis: sessionRedis, hydrates: tracked, store } = startWorkerStore());
  other = new SlateStore(admin, keys, ring);
  await waitFor(() => tracked.active, { timeoutMs: 5_000, what: 'tracking to start' });
});

afterEach(async () => {
  tracked.close();
  sessionRedis.disconnect();
  await cleanupPrefix(admin, prefix);
});

async function createSession(id: string, on: SlateStore = other): Promise<SessionKeys> {
  const session = keys.session('default', id);
  const result = await on.commit(session, [
    { name: 'cookies', expectedVersion: 0, value: { cookies: [{ key: 'sid', value: 'one' }] }, ttlMs: TTL_MS },
    { name: 'profile', expectedVersion: 0, value: { userAgent: 'test/1.0' }, ttlMs: TTL_MS },
    { name: 'meta', expectedVersion: 0, value: { jobs: 0, errors: 0 }, ttlMs: TTL_MS },
  ]);
  if (!result.ok) throw new Error(`session ${id} exists`);
  return session;
}

/** Hydrates until the answer satisfies `check` (an invalidation is on its way), then returns it. */
function hydrateUntil(session: SessionKeys, check: (answer: Awaited<ReturnType<SlateStore['hydrate']>>) => boolean) {
  return waitFor(
    async () => {
      const answer = await store.hydrate(session, NAMES);
      return check(answer) ? answer : undefined;
    },
    { timeoutMs: 5_000, intervalMs: 10, what: 'the change to reach the tracked store' },
  );
}

const cookieValue = (answer: Awaited<ReturnType<SlateStore['hydrate']>>) =>
  (answer.slates.get('cookies')?.value as { cookies: Array<{ value: string }> } | undefined)?.cookies[0]?.value;

describe('tracked hydrates', () => {
  it("answer a healthy session's next hydrate without Redis, with the same reads, as a copy the job may change", async () => {
    const session = await createSession('hot');
    const first = await store.hydrate(session, NAMES);
    const hits = tracked.counters.hits;
    const second = await store.hydrate(session, NAMES);
    expect(tracked.counters.hits).toBe(hits + 1);
    expect(second.slates).not.toBe(first.slates);
    expect([...second.slates.entries()]).toEqual([...first.slates.entries()]);
    expect(second.quarantined).toBe(false);
    expect(second.breakerOpenUntil).toBeUndefined();
    // A job changing its map does not change what the next job gets.
    second.slates.delete('cookies');
    expect((await store.hydrate(session, NAMES)).slates.get('cookies')?.version).toBe(1);
  });

  it("see another worker's commit, quarantine and breaker, each within moments", async () => {
    const session = await createSession('shared');
    const first = await store.hydrate(session, NAMES);
    expect(cookieValue(first)).toBe('one');
    const hitsBefore = tracked.counters.hits;
    await store.hydrate(session, NAMES);
    expect(tracked.counters.hits).toBe(hitsBefore + 1);

    const changed = await other.commit(session, [
      { name: 'cookies', expectedVersion: 1, value: { cookies: [{ key: 'sid', value: 'two' }] }, ttlMs: TTL_MS },
    ]);
    expect(changed.ok).toBe(true);
    const after = await hydrateUntil(session, (answer) => cookieValue(answer) === 'two');
    expect(after.slates.get('cookies')?.version).toBe(2);
    expect(tracked.counters.invalidations).toBeGreaterThan(0);

    const until = Date.now() + 60_000;
    await other.openBreaker(session, until);
    expect((await hydrateUntil(session, (answer) => answer.breakerOpenUntil !== undefined)).breakerOpenUntil).toBe(
      until,
    );
    // An open breaker's answer is never kept: every hydrate asks Redis until it closes.
    const hits = tracked.counters.hits;
    await store.hydrate(session, NAMES);
    expect(tracked.counters.hits).toBe(hits);
    await other.closeBreaker(session);

    await other.quarantine(session, 60_000);
    const quarantined = await hydrateUntil(session, (answer) => answer.quarantined);
    expect(quarantined.slates.get('cookies')?.version).toBe(0);
  });

  it("read Redis again after this worker's own commit, without waiting for Redis to say so", async () => {
    const session = await createSession('own', store);
    await store.hydrate(session, NAMES);
    const result = await store.commit(session, [
      { name: 'meta', expectedVersion: 1, value: { jobs: 5, errors: 0 }, ttlMs: TTL_MS },
    ]);
    expect(result.ok).toBe(true);
    const next = await store.hydrate(session, NAMES);
    expect(next.slates.get('meta')?.version).toBe(2);
    expect(next.slates.get('meta')?.value).toEqual({ jobs: 5, errors: 0 });
  });

  it('do not keep an answer whose session this worker wrote while it was in flight', async () => {
    const session = await createSession('racing', store);
    const hydrating = store.hydrate(session, NAMES);
    const committing = store.commit(session, [
      { name: 'meta', expectedVersion: 1, value: { jobs: 1, errors: 0 }, ttlMs: TTL_MS },
    ]);
    expect((await hydrating).slates.get('meta')?.version).toBe(1);
    expect((await committing).ok).toBe(true);
    const hits = tracked.counters.hits;
    expect((await store.hydrate(session, NAMES)).slates.get('meta')?.version).toBe(2);
    expect(tracked.counters.hits).toBe(hits);
  });

  it("never keep an answer that another worker's concurrent commit made stale, whichever reaches Redis first", async () => {
    const session = await createSession('concurrent');
    for (let version = 1; version <= 20; version++) {
      const hydrating = store.hydrate(session, NAMES);
      const committing = other.commit(session, [
        { name: 'meta', expectedVersion: version, value: { jobs: version, errors: 0 }, ttlMs: TTL_MS },
      ]);
      await Promise.all([hydrating, committing]);
      // The new version shows within moments, however the reply and the invalidation raced.
      await hydrateUntil(session, (answer) => answer.slates.get('meta')?.version === version + 1);
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect((await store.hydrate(session, NAMES)).slates.get('meta')?.version).toBe(version + 1);
    }
  });

  it('reuse an answer no longer than maxAgeMs, and keep at most `capacity` sessions', async () => {
    const redis = openSessionRedis(REDIS_URL);
    const hydrates = TrackedHydrates.start<KeptHydrate>(redis, { maxAgeMs: 300, capacity: 2 });
    const own = new SlateStore(redis, keys, ring, { tracked: hydrates });
    try {
      await waitFor(() => hydrates.active, { timeoutMs: 5_000, what: 'tracking to start' });
      const [a, b, c] = await Promise.all(['cap-a', 'cap-b', 'cap-c'].map((id) => createSession(id)));
      for (const session of [a, b, c]) await own.hydrate(session as SessionKeys, NAMES);
      expect(hydrates.size).toBe(2);
      // The oldest went first: a is read from Redis again, c is answered here.
      let hits = hydrates.counters.hits;
      await own.hydrate(c as SessionKeys, NAMES);
      expect(hydrates.counters.hits).toBe(hits + 1);
      hits = hydrates.counters.hits;
      await own.hydrate(a as SessionKeys, NAMES);
      expect(hydrates.counters.hits).toBe(hits);
      await new Promise((resolve) => setTimeout(resolve, 400));
      hits = hydrates.counters.hits;
      await own.hydrate(a as SessionKeys, NAMES);
      expect(hydrates.counters.hits).toBe(hits);
    } finally {
      hydrates.close();
      redis.disconnect();
    }
  });

  it('drop every answer when Redis flushes its tracking (FLUSHALL), and keep tracking after', async () => {
    const server = await startRedisServer();
    const redis = openSessionRedis(server.url);
    const hydrates = TrackedHydrates.start<KeptHydrate>(redis);
    const own = new SlateStore(redis, keys, ring, { tracked: hydrates });
    const admin2 = openTestRedis(server.url);
    try {
      await waitFor(() => hydrates.active, { timeoutMs: 5_000, what: 'tracking to start' });
      const session = await createSession('flushed', own);
      await own.hydrate(session, NAMES);
      expect(hydrates.size).toBe(1);
      const flushes = hydrates.counters.flushes;
      await admin2.flushall();
      await waitFor(() => hydrates.counters.flushes > flushes, { timeoutMs: 5_000, what: 'the flush' });
      expect(hydrates.size).toBe(0);
      expect((await own.hydrate(session, NAMES)).slates.get('meta')?.version).toBe(0);
      expect(hydrates.active).toBe(true);
      await createSession('flushed', own);
      expect((await own.hydrate(session, NAMES)).slates.get('meta')?.version).toBe(1);
    } finally {
      hydrates.close();
      redis.disconnect();
      admin2.disconnect();
      await server.stop();
    }
  });

  it('keep nothing for a workflow slate, whose state goes to job code', async () => {
    const session = await createSession('workflow');
    const names: SlateName[] = ['cookies', 'workflow:checkout'];
    await store.hydrate(session, names);
    const hits = tracked.counters.hits;
    await store.hydrate(session, names);
    expect(tracked.counters.hits).toBe(hits);
    expect(tracked.size).toBe(0);
  });

  it('drop every answer when either connection is lost, and track again once both are back', async () => {
    const session = await createSession('reconnect');
    await store.hydrate(session, NAMES);
    expect(tracked.size).toBe(1);

    // The session connection: Redis forgets what it tracked for it.
    const sessionId = await sessionRedis.client('ID');
    await admin.client('KILL', 'ID', String(sessionId));
    await waitFor(() => !tracked.active || tracked.size === 0, { timeoutMs: 5_000, what: 'the loss to be seen' });
    expect(tracked.size).toBe(0);
    await waitFor(() => tracked.active, { timeoutMs: 10_000, what: 'tracking to restart' });
    await store.hydrate(session, NAMES);
    await other.commit(session, [
      {
        name: 'cookies',
        expectedVersion: 1,
        value: { cookies: [{ key: 'sid', value: 'after-session' }] },
        ttlMs: TTL_MS,
      },
    ]);
    await hydrateUntil(session, (answer) => cookieValue(answer) === 'after-session');

    // The subscriber: Redis has nowhere to send invalidations until it is back.
    await store.hydrate(session, NAMES);
    const subscriberId = tracked.invalidationClientId;
    expect(subscriberId).toBeDefined();
    const flushes = tracked.counters.flushes;
    await admin.client('KILL', 'ID', String(subscriberId));
    await waitFor(() => tracked.counters.flushes > flushes, { timeoutMs: 5_000, what: 'the subscriber loss' });
    expect(tracked.size).toBe(0);
    await waitFor(() => tracked.active, { timeoutMs: 10_000, what: 'tracking to restart' });
    await store.hydrate(session, NAMES);
    await other.commit(session, [
      { name: 'cookies', expectedVersion: 2, value: { cookies: [{ key: 'sid', value: 'after-sub' }] }, ttlMs: TTL_MS },
    ]);
    await hydrateUntil(session, (answer) => cookieValue(answer) === 'after-sub');
  });

  it('drop every answer when the subscriber stops answering without closing, and reconnect it', async () => {
    const proxy = await startFreezableProxy(REDIS_URL);
    const redis = openSessionRedis(proxy.url);
    const hydrates = TrackedHydrates.start<KeptHydrate>(redis, { pingMs: 200 });
    const own = new SlateStore(redis, keys, ring, { tracked: hydrates });
    try {
      await waitFor(() => hydrates.active, { timeoutMs: 5_000, what: 'tracking to start' });
      const session = await createSession('silent');
      await own.hydrate(session, NAMES);
      expect(hydrates.size).toBe(1);
      // A half-open subscriber: nothing it is sent arrives, and nothing says so.
      const subscriberId = hydrates.invalidationClientId;
      expect(proxy.freezeSubscribers()).toBe(1);
      const changed = await other.commit(session, [
        { name: 'meta', expectedVersion: 1, value: { jobs: 9, errors: 0 }, ttlMs: TTL_MS },
      ]);
      expect(changed.ok).toBe(true);
      const seen = await waitFor(
        async () => {
          const meta = (await own.hydrate(session, NAMES)).slates.get('meta');
          return meta?.version === 2 ? meta : undefined;
        },
        { timeoutMs: 3_000, intervalMs: 20, what: 'the lost subscriber to be noticed' },
      );
      expect(seen.value).toEqual({ jobs: 9, errors: 0 });
      // A new subscriber (a new connection through the proxy) takes over, and invalidations flow.
      await waitFor(() => hydrates.active && hydrates.invalidationClientId !== subscriberId, {
        timeoutMs: 10_000,
        what: 'a new subscriber',
      });
      await own.hydrate(session, NAMES);
      await other.commit(session, [
        { name: 'meta', expectedVersion: 2, value: { jobs: 10, errors: 0 }, ttlMs: TTL_MS },
      ]);
      await waitFor(async () => (await own.hydrate(session, NAMES)).slates.get('meta')?.version === 3, {
        timeoutMs: 3_000,
        intervalMs: 20,
        what: 'the invalidation through the new subscriber',
      });
    } finally {
      hydrates.close();
      redis.disconnect();
      await proxy.close();
    }
  });

  it('go without, after one warning, on a Redis that refuses CLIENT TRACKING', async () => {
    const server = await startRedisServer({ args: ['--rename-command', 'CLIENT', ''] });
    const redis = openSessionRedis(server.url);
    const refusals: string[] = [];
    const hydrates = TrackedHydrates.start<KeptHydrate>(redis, { onUnavailable: (reason) => refusals.push(reason) });
    try {
      const own = new SlateStore(redis, keys, ring, { tracked: hydrates });
      await waitFor(() => refusals.length > 0, { timeoutMs: 5_000, what: 'the refusal' });
      expect(refusals).toHaveLength(1);
      expect(refusals[0]).toMatch(/unknown command/i);
      expect(hydrates.active).toBe(false);
      const session = await createSession('plain', own);
      await own.hydrate(session, NAMES);
      const second = await own.hydrate(session, NAMES);
      expect(second.slates.get('meta')?.version).toBe(1);
      expect(hydrates.counters.hits).toBe(0);
    } finally {
      hydrates.close();
      redis.disconnect();
      await server.stop();
    }
  });
});

/**
 * A TCP proxy to Redis whose subscriber connections (those that sent SUBSCRIBE) can be frozen: from
 * then on nothing passes either way and neither side is told, as with a half-open socket.
 */
async function startFreezableProxy(target: string) {
  const { hostname, port } = new URL(target);
  const links: Array<{ client: Socket; upstream: Socket; subscriber: boolean; frozen: boolean }> = [];
  const server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    const link = { client, upstream, subscriber: false, frozen: false };
    links.push(link);
    client.on('data', (chunk) => {
      if (/subscribe/i.test(chunk.toString('latin1'))) link.subscriber = true;
      if (!link.frozen) upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!link.frozen) client.write(chunk);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as AddressInfo;
  return {
    url: `redis://127.0.0.1:${address.port}`,
    /** Freezes the open subscriber connections; returns how many. */
    freezeSubscribers(): number {
      const open = links.filter((link) => link.subscriber && !link.frozen && !link.client.destroyed);
      for (const link of open) link.frozen = true;
      return open.length;
    },
    async close() {
      for (const link of links) {
        link.client.destroy();
        link.upstream.destroy();
      }
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
