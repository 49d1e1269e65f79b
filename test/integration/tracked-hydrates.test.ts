import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { BreakerFlags } from '@crawlfleet/breakers';
import type { SessionKeys } from '@crawlfleet/core';
import { openSessionRedis } from '@crawlfleet/core';
import { startRedisServer } from '@crawlfleet/local-redis';
import {
  type HydrateAnswer,
  type KeptHydrate,
  SessionFlags,
  type SlateName,
  type SlateRead,
  SlateStore,
  type SlateWrite,
  TrackedHydrates,
} from '@crawlfleet/slates';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  cleanupPrefix,
  keyLayout,
  openTestRedis,
  REDIS_URL,
  testRing,
  uniquePrefix,
  waitFor,
  watchCommands,
} from '../src/harness.js';

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
  const redis = openSessionRedis(url) as Redis;
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

/** A cookies write: fields set and deleted, blind. */
function cookies(set: Record<string, unknown>, unset: string[] = []): SlateWrite {
  return { rule: 'fields', name: 'cookies', set: Object.entries(set), unset, ttlMs: TTL_MS };
}

/** A meta write: counts added, the time of use. */
function counts(jobs: number, errors = 0): SlateWrite {
  return { rule: 'counters', name: 'meta', jobs, errors, lastUsedMs: Date.now(), ttlMs: TTL_MS };
}

async function commitOk(on: SlateStore, session: SessionKeys, writes: readonly SlateWrite[]) {
  const result = await on.commit(session, writes);
  if (!result.ok) throw new Error(`unexpected conflict on ${result.conflict}`);
  return result;
}

/** A session as a worker's first job leaves it: a cookie, a profile, one job counted. */
async function createSession(id: string, on: SlateStore = other): Promise<SessionKeys> {
  const session = keys.session('default', id);
  const result = await commitOk(on, session, [
    cookies({ sid: 'one' }),
    { rule: 'create', name: 'profile', value: { userAgent: 'test/1.0' }, ttlMs: TTL_MS },
    counts(1),
  ]);
  if (!result.created) throw new Error(`session ${id} exists`);
  return session;
}

/** Hydrates until the answer satisfies `check` (an invalidation is on its way), then returns it. */
function hydrateUntil(session: SessionKeys, check: (answer: HydrateAnswer) => boolean) {
  return waitFor(
    async () => {
      const answer = await store.hydrate(session, NAMES);
      return check(answer) ? answer : undefined;
    },
    { timeoutMs: 5_000, intervalMs: 10, what: 'the change to reach the tracked store' },
  );
}

const cookieJar = (answer: HydrateAnswer) => answer.slates.get('cookies')?.value as Record<string, unknown> | undefined;
const cookieValue = (answer: HydrateAnswer) => cookieJar(answer)?.sid;
const jobs = (answer: HydrateAnswer) => (answer.slates.get('meta')?.value as { jobs: number } | undefined)?.jobs;

/** Each slate's version and value, as the specs compare them. */
const slatesOf = (slates: ReadonlyMap<SlateName, SlateRead>) =>
  NAMES.map((name) => ({ name, version: slates.get(name)?.version, value: slates.get(name)?.value }));
const shown = (answer: HydrateAnswer) => slatesOf(answer.slates);

/** What Redis holds now, as a worker that keeps nothing reads it. */
async function truth(session: SessionKeys) {
  return slatesOf(await new SlateStore(admin, keys, ring, { openedSlates: 0 }).read(session, NAMES));
}

describe('tracked hydrates', () => {
  it("answer a healthy session's next hydrate without Redis, with the same reads, as a copy the job may change", async () => {
    const session = await createSession('hot');
    const first = await store.hydrate(session, NAMES);
    const hits = tracked.counters.hits;
    const watch = await watchCommands();
    let second: HydrateAnswer;
    try {
      second = await store.hydrate(session, NAMES);
      expect(await watch.ran(session.base)).toEqual([]);
    } finally {
      await watch.close();
    }
    expect(tracked.counters.hits).toBe(hits + 1);
    expect(second.slates).not.toBe(first.slates);
    expect([...second.slates.entries()]).toEqual([...first.slates.entries()]);
    expect(second.quarantined).toBe(false);
    expect(second.breakerOpenUntil).toBeUndefined();
    // A job changing its map does not change what the next job gets.
    second.slates.delete('cookies');
    expect((await store.hydrate(session, NAMES)).slates.get('cookies')?.version).toBe(1);
  });

  it("see another worker's commit, breaker and quarantine, each within moments", async () => {
    const session = await createSession('shared');
    const first = await store.hydrate(session, NAMES);
    expect(cookieValue(first)).toBe('one');
    const hitsBefore = tracked.counters.hits;
    await store.hydrate(session, NAMES);
    expect(tracked.counters.hits).toBe(hitsBefore + 1);

    await commitOk(other, session, [cookies({ sid: 'two' }), counts(1)]);
    const after = await hydrateUntil(session, (answer) => cookieValue(answer) === 'two');
    expect(after.slates.get('cookies')?.version).toBe(2);
    expect(jobs(after)).toBe(2);
    expect(tracked.counters.invalidations).toBeGreaterThan(0);

    const breakers = new BreakerFlags(admin);
    const until = Date.now() + 60_000;
    expect(await breakers.open(session, until)).toBe(true);
    expect((await hydrateUntil(session, (answer) => answer.breakerOpenUntil !== undefined)).breakerOpenUntil).toBe(
      until,
    );
    // An open breaker's answer is never kept: every hydrate asks Redis until it closes.
    const hits = tracked.counters.hits;
    await store.hydrate(session, NAMES);
    expect(tracked.counters.hits).toBe(hits);
    await breakers.close(session);
    await hydrateUntil(session, (answer) => answer.breakerOpenUntil === undefined);

    await new SessionFlags(admin).quarantine(session, 60_000);
    const quarantined = await hydrateUntil(session, (answer) => answer.quarantined);
    expect(quarantined.slates.get('cookies')?.version).toBe(0);
    expect(quarantined.slates.get('meta')?.version).toBe(0);
  });

  it("apply this worker's own commit to the kept answer: the next hydrate is answered without Redis and shows it", async () => {
    const session = await createSession('own');
    await store.hydrate(session, NAMES);
    const result = await commitOk(store, session, [
      cookies({ theme: 'dark' }),
      { rule: 'create', name: 'profile', value: { userAgent: 'late/2.0' }, ttlMs: TTL_MS },
      counts(2, 1),
    ]);
    expect(result.versions.get('cookies')).toBe(2);

    const hits = tracked.counters.hits;
    const watch = await watchCommands();
    let next: HydrateAnswer;
    try {
      next = await store.hydrate(session, NAMES);
      expect(await watch.ran(session.base)).toEqual([]);
    } finally {
      await watch.close();
    }
    expect(tracked.counters.hits).toBe(hits + 1);
    expect(cookieJar(next)).toEqual({ sid: 'one', theme: 'dark' });
    expect(next.slates.get('meta')?.value).toMatchObject({ jobs: 3, errors: 1 });
    expect(next.slates.get('profile')?.value).toEqual({ userAgent: 'test/1.0' });
    expect(shown(next)).toEqual(await truth(session));

    // A cookie deleted by this worker is gone from the next answer too.
    await commitOk(store, session, [cookies({}, ['sid']), counts(1)]);
    const afterUnset = await store.hydrate(session, NAMES);
    expect(tracked.counters.hits).toBe(hits + 2);
    expect(cookieJar(afterUnset)).toEqual({ theme: 'dark' });
    expect(shown(afterUnset)).toEqual(await truth(session));
  });

  it("apply this worker's own commits to a session it created, without reading it again", async () => {
    const session = keys.session('default', 'new');
    const empty = await store.hydrate(session, NAMES);
    expect(empty.slates.get('meta')?.version).toBe(0);
    const created = await commitOk(store, session, [
      cookies({ sid: 'first' }),
      { rule: 'create', name: 'profile', value: { userAgent: 'test/1.0' }, ttlMs: TTL_MS },
      counts(1),
    ]);
    expect(created.created).toBe(true);
    const hits = tracked.counters.hits;
    const next = await store.hydrate(session, NAMES);
    expect(tracked.counters.hits).toBe(hits + 1);
    expect(shown(next)).toEqual(await truth(session));
    expect(cookieValue(next)).toBe('first');
  });

  it("still see another worker's commit within moments after this worker's own commit", async () => {
    const session = await createSession('both');
    await store.hydrate(session, NAMES);
    await commitOk(store, session, [cookies({ mine: 'm' })]);
    expect(cookieJar(await store.hydrate(session, NAMES))).toEqual({ sid: 'one', mine: 'm' });

    // Cookies alone, no meta: the invalidation of the cookies key itself must arrive.
    await commitOk(other, session, [cookies({ theirs: 't' })]);
    const seen = await hydrateUntil(session, (answer) => cookieJar(answer)?.theirs === 't');
    expect(cookieJar(seen)).toEqual({ sid: 'one', mine: 'm', theirs: 't' });
    expect(shown(seen)).toEqual(await truth(session));
  });

  it("show this worker's own breaker and quarantine at once, without waiting for Redis to tell", async () => {
    const session = await createSession('flags');
    await store.hydrate(session, NAMES);
    await store.hydrate(session, NAMES);

    const breakers = new BreakerFlags(store.connection, (written) => store.forget(written));
    const until = Date.now() + 60_000;
    await breakers.open(session, until);
    expect((await store.hydrate(session, NAMES)).breakerOpenUntil).toBe(until);
    await breakers.close(session);
    expect((await store.hydrate(session, NAMES)).breakerOpenUntil).toBeUndefined();

    await store.flags.quarantine(session, 60_000);
    const quarantined = await store.hydrate(session, NAMES);
    expect(quarantined.quarantined).toBe(true);
    expect(quarantined.slates.get('cookies')?.version).toBe(0);
  });

  it("never leave a stale answer when this worker's commit races its own hydrate in flight, in any order", async () => {
    const session = await createSession('racing', store);
    const orders = [
      'hydrate, then a blind commit (sent at the end of the turn)',
      'hydrate, then a commit sent at once (it holds a compare-and-set)',
      'a commit sent at once, then hydrate',
      'a blind commit in flight, then hydrate',
    ] as const;
    let authVersion = 0;
    for (let i = 0; i < 40; i++) {
      const order = orders[i % orders.length] as (typeof orders)[number];
      // No answer kept: the hydrate below goes to Redis.
      store.forget(session);
      const blind = [cookies({ [`n${i}`]: i, sid: `v${i}` }), counts(1)];
      const atOnce: SlateWrite[] = [
        ...blind,
        { name: 'auth', expectedVersion: authVersion, value: { round: i }, ttlMs: TTL_MS },
      ];
      let hydrating: Promise<HydrateAnswer>;
      let committing: Promise<unknown>;
      if (order.startsWith('hydrate')) {
        hydrating = store.hydrate(session, NAMES);
        committing = commitOk(store, session, order.includes('at once') ? atOnce : blind);
      } else if (order.includes('at once')) {
        committing = commitOk(store, session, atOnce);
        hydrating = store.hydrate(session, NAMES);
      } else {
        committing = commitOk(store, session, blind);
        await new Promise((resolve) => setImmediate(resolve));
        hydrating = store.hydrate(session, NAMES);
      }
      await Promise.all([hydrating, committing]);
      if (order.includes('at once')) authVersion++;
      // The commit's reply is in: the answer kept now has it, is what Redis holds, with no wait.
      const hits = tracked.counters.hits;
      const next = await store.hydrate(session, NAMES);
      expect(tracked.counters.hits, `${order}, round ${i}: answered here`).toBe(hits + 1);
      expect(shown(next), `${order}, round ${i}`).toEqual(await truth(session));
      expect(cookieValue(next)).toBe(`v${i}`);
      expect(jobs(next)).toBe(i + 2);
    }
  });

  it("never keep an answer that another worker's concurrent commit made stale, whichever reaches Redis first", async () => {
    const session = await createSession('concurrent');
    for (let i = 0; i < 20; i++) {
      // Half the rounds race a read in flight, half an answer already kept.
      if (i % 2 === 0) store.forget(session);
      const hydrating = store.hydrate(session, NAMES);
      const committing = commitOk(other, session, [cookies({ sid: `v${i}` }), counts(1)]);
      await Promise.all([hydrating, committing]);
      // The new value shows within moments, however the reply and the invalidation raced.
      await hydrateUntil(session, (answer) => cookieValue(answer) === `v${i}` && jobs(answer) === i + 2);
      await new Promise((resolve) => setTimeout(resolve, 20));
      const settled = await store.hydrate(session, NAMES);
      expect(cookieValue(settled)).toBe(`v${i}`);
      expect(jobs(settled)).toBe(i + 2);
    }
  });

  it('never hand out cookies that a quarantine burnt once another worker writes the session again', async () => {
    const session = await createSession('reborn');
    expect(cookieValue(await store.hydrate(session, NAMES))).toBe('one');

    // Quarantined and over while this worker runs no job of the session: it only hears of it.
    await new SessionFlags(admin).quarantine(session, 300);
    await waitFor(() => tracked.size === 0, { timeoutMs: 5_000, what: 'the invalidation' });
    await waitFor(async () => (await admin.exists(session.quarantine)) === 0, { what: 'the quarantine to end' });
    // A new login by another worker: the first cookies write of the session again.
    await commitOk(other, session, [cookies({ sid: 'fresh' }), counts(1)]);
    const seen = await hydrateUntil(session, (answer) => answer.slates.get('meta')?.version === 1);
    expect(cookieValue(seen)).toBe('fresh');
    expect(shown(seen)).toEqual(await truth(session));
  });

  it('reuse an answer no longer than maxAgeMs, and keep at most `capacity` sessions', async () => {
    const redis = openSessionRedis(REDIS_URL) as Redis;
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
    const redis = openSessionRedis(server.url) as Redis;
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
      const flushed = await own.hydrate(session, NAMES);
      expect(flushed.slates.get('meta')?.version).toBe(0);
      expect(flushed.slates.get('cookies')?.version).toBe(0);
      expect(hydrates.active).toBe(true);
      await createSession('flushed', own);
      const again = await own.hydrate(session, NAMES);
      expect(again.slates.get('meta')?.version).toBe(1);
      expect(cookieValue(again)).toBe('one');
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
    await commitOk(other, session, [cookies({ sid: 'after-session' })]);
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
    await commitOk(other, session, [cookies({ sid: 'after-sub' })]);
    await hydrateUntil(session, (answer) => cookieValue(answer) === 'after-sub');
  });

  it('drop every answer when the subscriber stops answering without closing, and reconnect it', async () => {
    const proxy = await startFreezableProxy(REDIS_URL);
    const redis = openSessionRedis(proxy.url) as Redis;
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
      await commitOk(other, session, [counts(9)]);
      const seen = await waitFor(
        async () => {
          const answer = await own.hydrate(session, NAMES);
          return jobs(answer) === 10 ? answer : undefined;
        },
        { timeoutMs: 3_000, intervalMs: 20, what: 'the lost subscriber to be noticed' },
      );
      expect(seen.slates.get('meta')?.value).toMatchObject({ jobs: 10, errors: 0 });
      // A new subscriber (a new connection through the proxy) takes over, and invalidations flow.
      await waitFor(() => hydrates.active && hydrates.invalidationClientId !== subscriberId, {
        timeoutMs: 10_000,
        what: 'a new subscriber',
      });
      await own.hydrate(session, NAMES);
      await commitOk(other, session, [counts(1)]);
      await waitFor(async () => jobs(await own.hydrate(session, NAMES)) === 11, {
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
    const redis = openSessionRedis(server.url) as Redis;
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
