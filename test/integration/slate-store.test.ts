import { randomBytes } from 'node:crypto';
import { BreakerFlags } from '@crawlfleet/breakers';
import { coalesceWrites, type SessionKeys } from '@crawlfleet/core';
import {
  envelopeKid,
  fieldData,
  parseKeyRing,
  SessionAdmin,
  SessionFlags,
  type SlateName,
  SlateStore,
  type SlateWrite,
  seal,
} from '@crawlfleet/slates';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { cleanupPrefix, keyLayout, openTestRedis, uniquePrefix, watchCommands } from '../src/harness.js';

const TTL_MS = 600_000;
const oldEntry = `old:${randomBytes(32).toString('base64')}`;
const newEntry = `new:${randomBytes(32).toString('base64')}`;
const strangerEntry = `stranger:${randomBytes(32).toString('base64')}`;
const ring = parseKeyRing(newEntry);

let redis: Redis;
let prefix: string;
let keys: ReturnType<typeof keyLayout>;
let store: SlateStore;
let admin: SessionAdmin;

beforeAll(() => {
  redis = openTestRedis();
});

afterAll(async () => {
  await redis.quit();
});

beforeEach(() => {
  prefix = uniquePrefix('slates');
  keys = keyLayout(prefix);
  store = new SlateStore(redis, keys, ring);
  admin = new SessionAdmin(redis, keys);
});

afterEach(async () => {
  await cleanupPrefix(redis, prefix);
});

const cookieJar = { cookies: [{ key: 'sid', value: 'cookie-secret-4711', domain: '127.0.0.1' }] };
const auth = { token: 'bearer-token-0815', expiresAt: 1_900_000_000_000 };
const profile = { userAgent: 'crawlfleet-test/1.0', proxy: 'proxy-affinity-42' };

/** A cookies write: fields set (in this order) and fields deleted. */
function cookies(set: Record<string, unknown>, unset: string[] = [], ttlMs = TTL_MS): SlateWrite {
  return { rule: 'fields', name: 'cookies', set: Object.entries(set), unset, ttlMs };
}

/** A meta write: counts to add and the time of use. */
function counts(
  jobs: number,
  errors: number,
  lastUsedMs: number,
  { existing = false, ttlMs = TTL_MS }: { existing?: boolean; ttlMs?: number } = {},
): SlateWrite {
  return { rule: 'counters', name: 'meta', jobs, errors, lastUsedMs, ttlMs, ...(existing ? { existing } : {}) };
}

/** A compare-and-set write (the rule when none is named). */
function cas(name: SlateName, value: unknown, expectedVersion = 0, ttlMs = TTL_MS): SlateWrite {
  return { name, expectedVersion, value, ttlMs };
}

function createProfile(value: unknown, ttlMs = TTL_MS): SlateWrite {
  return { rule: 'create', name: 'profile', value, ttlMs };
}

/** Commits and fails the test on a conflict. */
async function commitOk(session: SessionKeys, writes: readonly SlateWrite[], on: SlateStore = store) {
  const result = await on.commit(session, writes);
  if (!result.ok) throw new Error(`unexpected conflict on ${result.conflict} at version ${result.version}`);
  return result;
}

/** A session as a worker leaves it after its first job: cookies, a login, a profile and its meta. */
async function startSession(session: SessionKeys, on: SlateStore = store, extra: SlateWrite[] = []) {
  return commitOk(
    session,
    [
      cookies({ sid: 'cookie-secret-4711' }),
      cas('auth', auth),
      createProfile(profile),
      counts(1, 0, Date.now()),
      ...extra,
    ],
    on,
  );
}

/** `count` workers, each with its own connection and store, running at once. */
async function withWorkers<T>(count: number, run: (worker: SlateStore, index: number) => Promise<T>): Promise<T[]> {
  const connections = Array.from({ length: count }, () => redis.duplicate());
  try {
    return await Promise.all(connections.map((connection, i) => run(new SlateStore(connection, keys, ring), i)));
  } finally {
    await Promise.all(connections.map((connection) => connection.quit()));
  }
}

async function storedEnvelope(key: string, field = 'd'): Promise<string> {
  const envelope = await redis.hget(key, field);
  if (envelope === null) throw new Error(`${key} has no ${field}`);
  return envelope;
}

/** The envelope with one character of its ciphertext changed. */
function tampered(envelope: string): string {
  const parts = envelope.split('.');
  const body = parts[3] as string;
  parts[3] = (body[0] === 'A' ? 'B' : 'A') + body.slice(1);
  return parts.join('.');
}

/** Every session key under the test prefix (the fleet-wide `{prefix}` keys aside). */
async function sessionKeysInRedis(): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    found.push(...batch);
  } while (cursor !== '0');
  return found.sort();
}

/** Everything one session holds in Redis: each key's type, value and whether it expires. */
async function snapshot(session: SessionKeys): Promise<Record<string, unknown>> {
  const held: Record<string, unknown> = {};
  for (const key of await sessionKeysInRedis()) {
    if (!key.startsWith(`${session.base}:`)) continue;
    const type = await redis.type(key);
    held[key] = type === 'hash' ? await redis.hgetall(key) : type === 'set' ? (await redis.smembers(key)).sort() : type;
  }
  return held;
}

/** Writes a slate as versions before the session registry stored it: `{v, d}`, sealed for its key. */
async function writeOlderSlate(session: SessionKeys, name: string, value: unknown, version = 1, sealWith = ring) {
  const key = session.slate(name);
  await redis.hset(key, 'v', version, 'd', seal(sealWith, key, JSON.stringify(value)));
  await redis.pexpire(key, TTL_MS);
}

/** Redis Cluster's slot of a key: CRC16/XMODEM of its hash tag (or of the whole key), mod 16384. */
function keySlot(key: string): number {
  const open = key.indexOf('{');
  const close = open === -1 ? -1 : key.indexOf('}', open + 1);
  const hashed = close > open + 1 ? key.slice(open + 1, close) : key;
  let crc = 0;
  for (const byte of Buffer.from(hashed, 'utf8')) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** Reads as a worker that holds nothing opened: what Redis stores, not what a writer remembers. */
function freshRead(session: SessionKeys, names: SlateName[]) {
  return new SlateStore(redis, keys, ring, { openedSlates: 0 }).read(session, names);
}

describe('SlateStore.read', () => {
  it('reports an absent slate as version 0 with no value, whatever its rule', async () => {
    const session = store.session('default', 's1');
    const names: SlateName[] = ['cookies', 'auth', 'profile', 'meta', 'workflow:login'];
    const slates = await store.read(session, names);
    expect([...slates.keys()]).toEqual(names);
    for (const slate of slates.values()) {
      expect(slate.version).toBe(0);
      expect(slate.value).toBeUndefined();
      expect(slate.discarded).toBeUndefined();
      expect(slate.discardedFields).toBeUndefined();
    }
  });

  it('reads slates of every rule in one command', async () => {
    const session = store.session('default', 's1');
    await startSession(session, store, [cas('workflow:login', { step: 2 })]);
    const own = redis.duplicate();
    const watch = await watchCommands();
    try {
      const reader = new SlateStore(own, keys, ring);
      const slates = await reader.read(session, ['cookies', 'auth', 'profile', 'meta', 'workflow:login']);
      expect(await watch.ran(session.base)).toHaveLength(1);
      expect(slates.get('cookies')?.value).toEqual({ sid: 'cookie-secret-4711' });
      expect(slates.get('auth')?.value).toEqual(auth);
      expect(slates.get('profile')?.value).toEqual(profile);
      expect(slates.get('meta')?.value).toMatchObject({ jobs: 1, errors: 0 });
      expect(slates.get('workflow:login')?.value).toEqual({ step: 2 });
    } finally {
      await watch.close();
      await own.quit();
    }
  });
});

describe('cookies: one sealed field per cookie, written blind', () => {
  it('stores one envelope per field beside a version, never the plain value, and reads back a frozen record', async () => {
    const session = store.session('default', 's1');
    const result = await commitOk(session, [cookies({ sid: 'cookie-secret-4711', jar: cookieJar })]);
    expect(result.versions).toEqual(new Map([['cookies', 1]]));

    const key = session.slate('cookies');
    const hash = await redis.hgetall(key);
    // The version, the slate's incarnation (new each time the slate is created) and the fields.
    expect(Object.keys(hash).sort()).toEqual(['i', 'jar', 'sid', 'v']);
    expect(hash.v).toBe('1');
    for (const field of ['jar', 'sid']) {
      expect(envelopeKid(hash[field] ?? '')).toBe('new');
      expect(hash[field]).toMatch(/^cf1\.new\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    }
    const raw = Buffer.concat(Object.values(await redis.hgetallBuffer(key)));
    for (const secret of ['cookie-secret-4711', '127.0.0.1', 'domain']) expect(raw.includes(secret)).toBe(false);

    const read = (await freshRead(session, ['cookies'])).get('cookies');
    expect(read).toEqual({ name: 'cookies', version: 1, value: { sid: 'cookie-secret-4711', jar: cookieJar } });
    expect(Object.isFrozen(read?.value)).toBe(true);
  });

  it('adds one to the version per write; the later write of a field wins and unset deletes it', async () => {
    const session = store.session('default', 's1');
    expect((await commitOk(session, [cookies({ a: 1, b: 2 })])).versions.get('cookies')).toBe(1);
    expect((await commitOk(session, [cookies({ a: 3 }, ['b'])])).versions.get('cookies')).toBe(2);
    expect((await freshRead(session, ['cookies'])).get('cookies')).toEqual({
      name: 'cookies',
      version: 2,
      value: { a: 3 },
    });
    expect(Object.keys(await redis.hgetall(session.slate('cookies'))).sort()).toEqual(['a', 'i', 'v']);

    // Deleting a field that is not there is no error; the version still moves on.
    expect((await commitOk(session, [cookies({}, ['a', 'never-set'])])).versions.get('cookies')).toBe(3);
    expect((await freshRead(session, ['cookies'])).get('cookies')).toEqual({ name: 'cookies', version: 3, value: {} });
  });

  it('keeps null, numbers, strings and objects of each field as they were', async () => {
    const session = store.session('default', 's1');
    const values = { nothing: null, zero: 0, empty: '', list: [1, 'two', { three: 3 }], flag: false };
    await commitOk(session, [cookies(values)]);
    expect((await freshRead(session, ['cookies'])).get('cookies')?.value).toEqual(values);
  });

  it('keeps all 50 fields that 50 concurrent commits of ten workers set, with no conflict', async () => {
    const session = store.session('default', 'hot');
    const results = await withWorkers(10, async (worker, w) => {
      const mine = [];
      for (let i = 0; i < 5; i++) mine.push(await worker.commit(session, [cookies({ [`c${w * 5 + i}`]: w * 5 + i })]));
      return mine;
    });
    for (const result of results.flat()) expect(result.ok).toBe(true);
    const read = (await freshRead(session, ['cookies'])).get('cookies');
    expect(read?.value).toEqual(Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`c${i}`, i])));
    // Each of the 50 commits was one write of the slate.
    expect(read?.version).toBe(50);
  });

  it.each(['v', 'd'])('refuses the reserved field name %s and writes nothing', async (field) => {
    const session = store.session('default', 's1');
    await expect(
      store.commit(session, [cookies({ sid: 'x', [field]: 'y' }), counts(1, 0, Date.now())]),
    ).rejects.toThrow(/reserved/);
    expect(await sessionKeysInRedis()).toEqual([]);
  });

  it.each([
    ['copied from another field', async (session: SessionKeys) => storedEnvelope(session.slate('cookies'), 'sid')],
    [
      "copied from another session's cookies",
      async () => storedEnvelope(store.session('default', 'elsewhere').slate('cookies'), 'theme'),
    ],
    [
      'tampered with',
      async (session: SessionKeys) => tampered(await storedEnvelope(session.slate('cookies'), 'theme')),
    ],
    ['written as plain JSON', async () => JSON.stringify('dark')],
  ])('drops a field whose envelope was %s, alone, and reads the others', async (_how, replacement) => {
    const session = store.session('default', 's1');
    await commitOk(session, [cookies({ sid: 'mine', theme: 'light' })]);
    await commitOk(store.session('default', 'elsewhere'), [cookies({ theme: 'dark' })]);
    await redis.hset(session.slate('cookies'), 'theme', await replacement(session));

    // A worker that has not opened the slate before: the writer may go on using what it wrote.
    const reader = new SlateStore(redis, keys, ring);
    const read = (await reader.read(session, ['cookies'])).get('cookies');
    expect(read).toEqual({ name: 'cookies', version: 1, value: { sid: 'mine' }, discardedFields: ['theme'] });
    expect(read?.discarded).toBeUndefined();
    expect((await reader.read(store.session('default', 'elsewhere'), ['cookies'])).get('cookies')?.value).toEqual({
      theme: 'dark',
    });
  });

  it('seals each cookie field for its own slate key and field name', async () => {
    const session = store.session('default', 's1');
    await commitOk(session, [cookies({ sid: 'x' })]);
    const key = session.slate('cookies');
    expect(fieldData(key, 'sid')).toBe(`${key}\nsid`);
    const reader = new SlateStore(redis, keys, ring);
    // Sealed by hand for the right key and field, it opens like one the store wrote.
    await redis.hset(key, 'theme', seal(ring, fieldData(key, 'theme'), JSON.stringify('dark')));
    expect((await reader.read(session, ['cookies'])).get('cookies')?.value).toEqual({ sid: 'x', theme: 'dark' });
  });

  it('reads nothing of the slate when a field is sealed with a key the ring does not hold', async () => {
    const session = store.session('default', 's1');
    // A worker whose ring seals with a key this one lacks (and opens this one's too).
    const stranger = new SlateStore(redis, keys, parseKeyRing(`${strangerEntry},${newEntry}`));
    await commitOk(session, [cookies({ mine: 'readable' })]);
    await commitOk(session, [cookies({ theirs: 'sealed-elsewhere' })], stranger);

    const read = (await freshRead(session, ['cookies'])).get('cookies');
    expect(read).toMatchObject({
      version: 2,
      value: undefined,
      discarded: { reason: 'unknown_key', payloadHash: expect.stringMatching(/^[0-9a-f]{16}$/) },
    });
    // The worker with that key reads both.
    expect((await stranger.read(session, ['cookies'])).get('cookies')?.value).toEqual({
      mine: 'readable',
      theirs: 'sealed-elsewhere',
    });
  });

  it('reads an older whole-value {v, d} slate as legacy, with its value, and a fields write replaces d', async () => {
    const session = store.session('default', 's1');
    await writeOlderSlate(session, 'cookies', cookieJar, 4);
    expect((await freshRead(session, ['cookies'])).get('cookies')).toEqual({
      name: 'cookies',
      version: 4,
      value: cookieJar,
      legacy: true,
    });

    expect((await commitOk(session, [cookies({ sid: 'cookie-secret-4711' })])).versions.get('cookies')).toBe(5);
    expect(Object.keys(await redis.hgetall(session.slate('cookies'))).sort()).toEqual(['i', 'sid', 'v']);
    expect((await freshRead(session, ['cookies'])).get('cookies')).toEqual({
      name: 'cookies',
      version: 5,
      value: { sid: 'cookie-secret-4711' },
    });
  });

  it.each([
    ['a string', (key: string) => redis.set(key, 'x')],
    ['a list', (key: string) => redis.rpush(key, 'x')],
    ['a version that is not a number', (key: string) => redis.hset(key, 'v', 'abc', 'old', 'x')],
    ['a version of 1e20', (key: string) => redis.hset(key, 'v', '1e20', 'old', 'x')],
  ])(
    'reads a cookies key holding %s as malformed (version -1), and the next write starts it over',
    async (_what, breakIt) => {
      const session = store.session('default', 's1');
      await breakIt(session.slate('cookies'));
      expect((await freshRead(session, ['cookies'])).get('cookies')).toMatchObject({
        version: -1,
        value: undefined,
        discarded: { reason: 'malformed' },
      });
      expect((await commitOk(session, [cookies({ sid: 'fresh' })])).versions.get('cookies')).toBe(1);
      expect((await freshRead(session, ['cookies'])).get('cookies')).toEqual({
        name: 'cookies',
        version: 1,
        value: { sid: 'fresh' },
      });
    },
  );
});

describe("profile: created once, the first writer's stands", () => {
  it('keeps the first value and hands it back to a later create, without a conflict', async () => {
    const session = store.session('default', 's1');
    const first = await commitOk(session, [createProfile(profile)]);
    expect(first.versions.get('profile')).toBe(1);
    expect(first.slates.get('profile')).toEqual({ name: 'profile', version: 1, value: profile });
    const stored = await redis.hgetall(session.slate('profile'));
    expect(Object.keys(stored).sort()).toEqual(['d', 'v']);
    expect(envelopeKid(stored.d ?? '')).toBe('new');

    const second = await commitOk(session, [createProfile({ userAgent: 'second/2.0' })]);
    expect(second.versions.get('profile')).toBe(1);
    expect(second.slates.get('profile')).toEqual({ name: 'profile', version: 1, value: profile });
    expect(await redis.hgetall(session.slate('profile'))).toEqual(stored);
    expect((await store.read(session, ['profile'])).get('profile')?.value).toEqual(profile);
  });

  it('lets exactly one of 20 workers creating it at once stand, and hands that one to all', async () => {
    const session = store.session('default', 's1');
    const results = await withWorkers(20, (worker, i) => commitOk(session, [createProfile({ by: i })], worker));
    const standing = (await store.read(session, ['profile'])).get('profile');
    expect(standing?.version).toBe(1);
    expect(results.map((result) => result.slates.get('profile'))).toEqual(
      results.map(() => ({ name: 'profile', version: 1, value: standing?.value })),
    );
  });
});

describe('meta: counters that add up', () => {
  it('adds counts, sets createdAt once and keeps the latest use; created only for the write that created the session', async () => {
    const session = store.session('default', 's1');
    const t0 = Date.now() - 60_000;
    const first = await commitOk(session, [counts(1, 0, t0)]);
    expect(first.created).toBe(true);
    expect(first.versions.get('meta')).toBe(1);
    expect(first.slates.get('meta')?.value).toEqual({ createdAt: iso(t0), lastUsedAt: iso(t0), jobs: 1, errors: 0 });

    const second = await commitOk(session, [counts(2, 1, t0 + 5_000)]);
    expect(second.created).toBe(false);
    expect(second.slates.get('meta')?.value).toEqual({
      createdAt: iso(t0),
      lastUsedAt: iso(t0 + 5_000),
      jobs: 3,
      errors: 1,
    });

    // A job that finished earlier but commits later does not move the last use back.
    const late = await commitOk(session, [counts(1, 0, t0 + 1_000)]);
    expect(late.created).toBe(false);
    const expected = { createdAt: iso(t0), lastUsedAt: iso(t0 + 5_000), jobs: 4, errors: 1 };
    expect(late.slates.get('meta')?.value).toEqual(expected);
    expect((await store.read(session, ['meta'])).get('meta')).toEqual({ name: 'meta', version: 1, value: expected });
  });

  it('stores plain counts and times, nothing sealed', async () => {
    const session = store.session('default', 's1');
    const t0 = Date.now();
    await commitOk(session, [counts(3, 2, t0)]);
    expect(await redis.hgetall(session.slate('meta'))).toEqual({
      createdAt: String(t0),
      lastUsedAt: String(t0),
      jobs: '3',
      errors: '2',
    });
  });

  it('loses no count when ten workers add at once, and only one of them created the session', async () => {
    const session = store.session('default', 'hot');
    const t0 = Date.now();
    const results = await withWorkers(10, async (worker, w) => {
      const mine = [];
      for (let i = 0; i < 5; i++) mine.push(await commitOk(session, [counts(1, i % 2, t0 + w * 5 + i)], worker));
      return mine;
    });
    expect(results.flat().filter((result) => result.created)).toHaveLength(1);
    expect((await store.read(session, ['meta'])).get('meta')?.value).toEqual({
      createdAt: expect.any(String),
      lastUsedAt: iso(t0 + 49),
      jobs: 50,
      errors: 20,
    });
  });

  it('with existing, adds only to counters that exist and creates none', async () => {
    const session = store.session('default', 's1');
    const t0 = Date.now();
    const none = await commitOk(session, [counts(5, 1, t0, { existing: true })]);
    expect(none.created).toBe(false);
    expect(none.versions.get('meta')).toBe(0);
    expect(none.slates.has('meta')).toBe(false);
    expect(await sessionKeysInRedis()).toEqual([]);
    expect(await redis.zcard(keys.sessionRegistry)).toBe(0);

    await commitOk(session, [counts(1, 0, t0)]);
    const added = await commitOk(session, [counts(5, 1, t0 + 1, { existing: true })]);
    expect(added.created).toBe(false);
    expect(added.versions.get('meta')).toBe(1);
    expect(added.slates.get('meta')?.value).toMatchObject({ jobs: 6, errors: 1, lastUsedAt: iso(t0 + 1) });
  });

  it('starts over from a meta key of another type', async () => {
    const session = store.session('default', 's1');
    await redis.set(session.slate('meta'), 'not a hash');
    expect((await store.read(session, ['meta'])).get('meta')).toMatchObject({
      version: -1,
      discarded: { reason: 'malformed' },
    });
    const t0 = Date.now();
    const result = await commitOk(session, [counts(1, 0, t0)]);
    expect(result.slates.get('meta')?.value).toEqual({ createdAt: iso(t0), lastUsedAt: iso(t0), jobs: 1, errors: 0 });
  });

  it('does not fail the commits of a session whose meta holds a count that is not a number', async () => {
    const session = store.session('default', 's1');
    const t0 = Date.now();
    await commitOk(session, [counts(1, 0, t0)]);
    await redis.hset(session.slate('meta'), 'jobs', 'many');

    const result = await commitOk(session, [cookies({ sid: 'after' }), counts(1, 0, t0 + 1)]);
    expect(result.versions.get('cookies')).toBe(1);
    expect((await store.read(session, ['meta'])).get('meta')?.value).toMatchObject({ jobs: 1 });
  });
});

describe('auth and workflow: compare-and-set', () => {
  it('creates new slates at version 1 as {v, d} hashes whose d is an envelope, never the plain JSON', async () => {
    const session = store.session('default', 's1');
    const result = await commitOk(session, [
      cas('auth', auth),
      {
        rule: 'cas',
        name: 'workflow:login',
        expectedVersion: 0,
        value: { step: 1, secret: 'workflow-secret-99' },
        ttlMs: TTL_MS,
      },
    ]);
    expect(result.versions).toEqual(
      new Map([
        ['auth', 1],
        ['workflow:login', 1],
      ]),
    );
    expect(result.slates.get('auth')).toEqual({ name: 'auth', version: 1, value: auth });
    for (const name of ['auth', 'workflow:login']) {
      const hash = await redis.hgetall(session.slate(name));
      expect(Object.keys(hash).sort()).toEqual(['d', 'v']);
      expect(hash.v).toBe('1');
      expect(hash.d).toMatch(/^cf1\.new\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    }
    const raw = Buffer.concat(
      (await Promise.all(['auth', 'workflow:login'].map((n) => redis.hgetallBuffer(session.slate(n))))).flatMap(
        (hash) => Object.values(hash),
      ),
    );
    for (const secret of ['bearer-token-0815', 'token', '1900000000000', 'workflow-secret-99', 'step']) {
      expect(raw.includes(secret)).toBe(false);
    }
  });

  it('updates from the version read, and the new value reads back', async () => {
    const session = store.session('default', 's1');
    await commitOk(session, [cas('auth', auth)]);
    const read = (await store.read(session, ['auth'])).get('auth');
    const updated = { ...auth, token: 'refreshed' };
    const result = await store.commit(session, [cas('auth', updated, read?.version ?? -1)]);
    expect(result).toEqual({
      ok: true,
      versions: new Map([['auth', 2]]),
      slates: new Map([['auth', { name: 'auth', version: 2, value: updated }]]),
      created: false,
    });
    expect((await store.read(session, ['auth'])).get('auth')).toEqual({ name: 'auth', version: 2, value: updated });
  });

  it('refuses a stale version, names the slate and its current version, and writes nothing of that commit', async () => {
    const session = store.session('default', 's1');
    await startSession(session, store, [cas('workflow:pages', { cursor: 1 })]);
    await commitOk(session, [cas('auth', { ...auth, token: 'newer' }, 1)]);
    const before = await snapshot(session);
    const ttlBefore = await redis.pttl(session.slate('cookies'));
    const registered = await redis.zrange(keys.sessionRegistry, 0, -1, 'WITHSCORES');

    const result = await store.commit(session, [
      cookies({ sid: 'stale' }, [], 5_000),
      createProfile({ userAgent: 'other' }),
      counts(1, 1, Date.now()),
      cas('workflow:pages', { cursor: 2 }, 1),
      cas('workflow:fresh', { step: 1 }, 0),
      cas('auth', { token: 'stale' }, 1),
    ]);

    expect(result).toEqual({ ok: false, conflict: 'auth', version: 2 });
    expect(await snapshot(session)).toEqual(before);
    expect(await redis.pttl(session.slate('cookies'))).toBeGreaterThan(ttlBefore - 5_000);
    expect(await redis.zrange(keys.sessionRegistry, 0, -1, 'WITHSCORES')).toEqual(registered);
  });

  it('deletes a slate committed with value undefined, reporting version 0, and drops it from the index', async () => {
    const session = store.session('default', 's1');
    await commitOk(session, [cas('auth', auth), cas('workflow:login', { step: 2 })]);
    const result = await commitOk(session, [cas('workflow:login', undefined, 1), cas('auth', auth, 1)]);
    expect(result.versions).toEqual(
      new Map([
        ['workflow:login', 0],
        ['auth', 2],
      ]),
    );
    expect(await redis.exists(session.slate('workflow:login'))).toBe(0);
    expect(await redis.smembers(session.index)).toEqual(['auth']);
    const read = await store.read(session, ['workflow:login', 'auth']);
    expect(read.get('workflow:login')).toEqual({ name: 'workflow:login', version: 0, value: undefined });
    expect(read.get('auth')?.value).toEqual(auth);
  });

  it('keeps null, numbers and strings as they were', async () => {
    const session = store.session('default', 's1');
    await commitOk(session, [
      cas('auth', null),
      cas('workflow:a', 0),
      cas('workflow:b', ''),
      cas('workflow:c', [1, 'two', { three: 3 }]),
    ]);
    const read = await store.read(session, ['auth', 'workflow:a', 'workflow:b', 'workflow:c']);
    expect(read.get('auth')).toMatchObject({ version: 1, value: null });
    expect(read.get('workflow:a')?.value).toBe(0);
    expect(read.get('workflow:b')?.value).toBe('');
    expect(read.get('workflow:c')?.value).toEqual([1, 'two', { three: 3 }]);
  });

  it('lets exactly one of 20 concurrent commits from the same read version win', async () => {
    const session = store.session('default', 's1');
    await commitOk(session, [cas('workflow:pages', { writer: 'first' })]);
    const { version } = (await store.read(session, ['workflow:pages'])).get('workflow:pages') ?? { version: -1 };
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => store.commit(session, [cas('workflow:pages', { writer: i }, version)])),
    );
    const winners = results.flatMap((r, i) => (r.ok ? [i] : []));
    expect(winners).toHaveLength(1);
    for (const r of results) if (!r.ok) expect(r).toEqual({ ok: false, conflict: 'workflow:pages', version: 2 });
    const read = (await store.read(session, ['workflow:pages'])).get('workflow:pages');
    expect(read).toMatchObject({ version: 2, value: { writer: winners[0] } });
  });

  it.each([
    ['a string', (key: string) => redis.set(key, 'x')],
    ['a list', (key: string) => redis.rpush(key, 'x')],
    ['a hash with a version that is not a number', (key: string) => redis.hset(key, 'v', 'abc', 'd', 'x')],
    ['a hash with a version of 1e20', (key: string) => redis.hset(key, 'v', '1e20', 'd', 'x')],
    ['a hash without an envelope', (key: string) => redis.hset(key, 'v', '3')],
  ])('reads a slate holding %s as version -1, and a commit expecting -1 replaces it', async (_what, breakIt) => {
    const session = store.session('default', 's1');
    await breakIt(session.slate('auth'));
    expect((await store.read(session, ['auth'])).get('auth')).toEqual({
      name: 'auth',
      version: -1,
      value: undefined,
      discarded: { reason: 'malformed', payloadHash: 'n/a' },
    });
    expect(await store.commit(session, [cas('auth', auth, 0)])).toEqual({ ok: false, conflict: 'auth', version: -1 });
    expect((await commitOk(session, [cas('auth', auth, -1)])).versions.get('auth')).toBe(1);
    expect((await store.read(session, ['auth'])).get('auth')).toEqual({ name: 'auth', version: 1, value: auth });
  });
});

describe('the session index and the session registry', () => {
  it('name every slate a session holds, and register the session when its meta is created', async () => {
    const session = store.session('default', 's1');
    await commitOk(session, [cookies({ sid: 'x' })]);
    expect(await redis.smembers(session.index)).toEqual(['cookies']);

    const before = Date.now();
    const result = await commitOk(session, [counts(1, 0, Date.now()), createProfile(profile)]);
    expect(result.created).toBe(true);
    expect(await redis.zrange(keys.sessionRegistry, 0, -1)).toEqual(['default/s1']);
    expect(Number(await redis.zscore(keys.sessionRegistry, 'default/s1'))).toBeGreaterThanOrEqual(before);

    await commitOk(session, [cas('auth', auth), cas('workflow:login', { step: 1 })]);
    expect((await redis.smembers(session.index)).sort()).toEqual([
      'auth',
      'cookies',
      'meta',
      'profile',
      'workflow:login',
    ]);
    // Written again, the session is registered once.
    await commitOk(session, [counts(1, 0, Date.now())]);
    expect(await redis.zcard(keys.sessionRegistry)).toBe(1);
  });

  it("sets each slate's TTL from its write, and keeps the index as long as the longest", async () => {
    const session = store.session('default', 's1');
    await commitOk(session, [
      cookies({ sid: 'x' }, [], TTL_MS),
      cas('workflow:pages', { cursor: 3 }, 0, 30_000),
      createProfile(profile, 60_000),
      counts(1, 0, Date.now(), { ttlMs: 90_000 }),
      cas('auth', auth, 0, 120_000),
    ]);
    const expected: Array<[string, number]> = [
      [session.slate('cookies'), TTL_MS],
      [session.slate('workflow:pages'), 30_000],
      [session.slate('profile'), 60_000],
      [session.slate('meta'), 90_000],
      [session.slate('auth'), 120_000],
      [session.index, TTL_MS],
    ];
    for (const [key, ttl] of expected) {
      const left = await redis.pttl(key);
      expect(left, key).toBeGreaterThan(ttl - 5_000);
      expect(left, key).toBeLessThanOrEqual(ttl);
    }
  });
});

describe('SessionAdmin.list', () => {
  it('lists every registered session with the slates it holds, sorted, and filters by tenant', async () => {
    const b = store.session('default', 'b');
    const a = store.session('default', 'a');
    const other = store.session('other', 'x');
    await commitOk(b, [cookies({ sid: 'b' }), counts(1, 0, Date.now())]);
    await startSession(a, store, [cas('workflow:login', { step: 1 })]);
    await redis.set(a.authLease, 'worker-1', 'PX', 10_000);
    await commitOk(other, [createProfile(profile), counts(1, 0, Date.now())]);
    await redis.set(store.session('default', 'lease-only').authLease, 'worker-2', 'PX', 10_000);

    expect(await admin.list()).toEqual([
      { tenant: 'default', sessionId: 'a', slates: ['auth', 'cookies', 'meta', 'profile', 'workflow:login'] },
      { tenant: 'default', sessionId: 'b', slates: ['cookies', 'meta'] },
      { tenant: 'other', sessionId: 'x', slates: ['meta', 'profile'] },
    ]);
    expect(await admin.list('other')).toEqual([{ tenant: 'other', sessionId: 'x', slates: ['meta', 'profile'] }]);
    expect(await admin.list('nobody')).toEqual([]);
  });

  it('lists only the sessions of its own prefix', async () => {
    const neighbour = `${prefix}x`;
    const elsewhere = new SlateStore(redis, keyLayout(neighbour), ring);
    try {
      await startSession(elsewhere.session('default', 'n'), elsewhere);
      await startSession(store.session('default', 'mine'));
      expect((await admin.list()).map((s) => s.sessionId)).toEqual(['mine']);
    } finally {
      await cleanupPrefix(redis, neighbour);
    }
  });

  it('drops from the registry a session whose slates all expired', async () => {
    const short = store.session('default', 'short');
    const long = store.session('default', 'long');
    await commitOk(short, [cookies({ sid: 's' }, [], 100), counts(1, 0, Date.now(), { ttlMs: 100 })]);
    await startSession(long);
    expect(await redis.zcard(keys.sessionRegistry)).toBe(2);
    await new Promise((resolve) => setTimeout(resolve, 300));

    expect((await admin.list()).map((s) => s.sessionId)).toEqual(['long']);
    expect(await redis.zrange(keys.sessionRegistry, 0, -1)).toEqual(['default/long']);
  });
});

describe('SessionAdmin.purge', () => {
  /** Every flag a session can carry, set as the fleet sets them. */
  async function raiseFlags(session: SessionKeys) {
    await redis.set(session.authLease, 'worker-1', 'PX', 10_000);
    await new SessionFlags(redis).countRateLimited(session, 10_000);
    const breaker = new BreakerFlags(redis);
    await breaker.open(session, Date.now() + 60_000);
    expect(await breaker.tryProbe(session, 10_000)).toBe('probe');
    await redis.set(session.quarantine, 'since', 'PX', 10_000);
  }

  it("deletes every key of the session (slates, index, flags, lease) and its registry entry, and nothing of another's", async () => {
    const a = store.session('default', 'a');
    const b = store.session('default', 'b');
    const other = store.session('other', 'a');
    for (const session of [a, b, other]) {
      await startSession(session, store, [cas('workflow:login', { step: 1 })]);
      await raiseFlags(session);
    }
    const untouched = [await snapshot(b), await snapshot(other)];

    // Five slates, the index, the lease, and the 429, breaker, probe and quarantine flags.
    expect(await admin.purge(a)).toBe(11);
    expect((await sessionKeysInRedis()).filter((key) => key.startsWith(`${a.base}:`))).toEqual([]);
    expect([await snapshot(b), await snapshot(other)]).toEqual(untouched);
    expect((await redis.zrange(keys.sessionRegistry, 0, -1)).sort()).toEqual(['default/b', 'other/a']);
    expect(await admin.purge(a)).toBe(0);
  });

  it('does not touch a session whose id starts with the purged one', async () => {
    const a = store.session('default', 'a');
    const ab = store.session('default', 'a.b');
    await startSession(a);
    await startSession(ab);
    const untouched = await snapshot(ab);
    expect(await admin.purge(a)).toBe(5);
    expect(await snapshot(ab)).toEqual(untouched);
    expect((await sessionKeysInRedis()).every((key) => key.startsWith(`${ab.base}:`))).toBe(true);
    expect(await redis.zrange(keys.sessionRegistry, 0, -1)).toEqual(['default/a.b']);
  });
});

describe('SessionAdmin.rotate', () => {
  const rotating = () => parseKeyRing(`${newEntry},${oldEntry}`);

  it('re-seals every sealed slate (its version moving on) and every cookie field under the new key, keeping values and TTLs', async () => {
    const oldStore = new SlateStore(redis, keys, parseKeyRing(oldEntry));
    const a = oldStore.session('default', 'a');
    const b = oldStore.session('other', 'b');
    await commitOk(
      a,
      [cookies({ sid: 'cookie-secret-4711', theme: 'dark' }), cas('auth', auth), counts(1, 0, 1)],
      oldStore,
    );
    await commitOk(b, [createProfile(profile), cas('workflow:login', { step: 2 }), counts(1, 0, 1)], oldStore);
    await redis.set(a.authLease, 'worker-1', 'PX', 10_000);
    const sealed = [a.slate('auth'), b.slate('profile'), b.slate('workflow:login')];
    const all = [a.slate('cookies'), ...sealed];
    const ttlsBefore = await Promise.all(all.map((key) => redis.pttl(key)));
    const metaBefore = [await redis.hgetall(a.slate('meta')), await redis.hgetall(b.slate('meta'))];

    const progress: number[] = [];
    const tally = await admin.rotate(rotating(), (done) => progress.push(done));

    expect(tally).toEqual({ resealed: 5, current: 0, unreadable: 0, moved: 0 });
    expect(progress).toEqual([1, 2]);
    for (const key of sealed) expect(envelopeKid(await storedEnvelope(key)), key).toBe('new');
    for (const field of ['sid', 'theme'])
      expect(envelopeKid(await storedEnvelope(a.slate('cookies'), field))).toBe('new');
    for (const [i, key] of all.entries()) {
      const ttl = await redis.pttl(key);
      expect(ttl, key).toBeLessThanOrEqual(ttlsBefore[i] as number);
      expect(ttl, key).toBeGreaterThan((ttlsBefore[i] as number) - 5_000);
    }
    expect([await redis.hgetall(a.slate('meta')), await redis.hgetall(b.slate('meta'))]).toEqual(metaBefore);
    expect(await redis.get(a.authLease)).toBe('worker-1');

    const newOnly = new SlateStore(redis, keys, parseKeyRing(newEntry));
    const readA = await newOnly.read(a, ['cookies', 'auth']);
    expect(readA.get('cookies')?.value).toEqual({ sid: 'cookie-secret-4711', theme: 'dark' });
    expect(readA.get('auth')).toEqual({ name: 'auth', version: 2, value: auth });
    const readB = await newOnly.read(b, ['profile', 'workflow:login']);
    expect(readB.get('profile')).toEqual({ name: 'profile', version: 2, value: profile });
    expect(readB.get('workflow:login')).toEqual({ name: 'workflow:login', version: 2, value: { step: 2 } });

    expect(await admin.rotate(rotating())).toEqual({ resealed: 0, current: 5, unreadable: 0, moved: 0 });
  });

  it('leaves a slate or a cookie field it cannot open alone, and counts it', async () => {
    const session = store.session('default', 's1');
    const stranger = new SlateStore(redis, keys, parseKeyRing(strangerEntry));
    await commitOk(session, [cookies({ theirs: 1 }), cas('auth', auth)], stranger);
    await commitOk(session, [cookies({ mine: 2 }), counts(1, 0, Date.now())]);
    const before = await snapshot(session);
    expect(await admin.rotate(ring)).toEqual({ resealed: 0, current: 1, unreadable: 2, moved: 0 });
    expect(await snapshot(session)).toEqual(before);
  });

  it('never undoes a cookie written while it runs, and counts every field once', async () => {
    const oldStore = new SlateStore(redis, keys, parseKeyRing(oldEntry));
    const session = store.session('default', 'busy');
    const fields = Array.from({ length: 200 }, (_, i) => `c${i}`);
    await commitOk(session, [cookies(Object.fromEntries(fields.map((f) => [f, 'old']))), counts(1, 0, 1)], oldStore);

    // Indexed already, so the rotation reads the slate at once and the writer overtakes it.
    await admin.indexOlderSessions();
    const [tally] = await Promise.all([
      admin.rotate(rotating()),
      withWorkers(1, async (worker) => {
        for (const field of [...fields].reverse()) await commitOk(session, [cookies({ [field]: 'new' })], worker);
      }),
    ]);

    expect((await store.read(session, ['cookies'])).get('cookies')?.value).toEqual(
      Object.fromEntries(fields.map((f) => [f, 'new'])),
    );
    expect(tally.resealed + tally.current + tally.moved).toBe(200);
    expect(tally.moved).toBeGreaterThan(0);
    expect(tally.unreadable).toBe(0);
  });
});

describe('SessionAdmin.indexOlderSessions', () => {
  const older = (tenant: string, id: string) => keys.session(tenant, id);

  it('indexes the sessions written before the registry, once, and marks it done', async () => {
    const one = older('default', 'old1');
    const two = older('other', 'old2');
    await writeOlderSlate(one, 'cookies', cookieJar, 3);
    await writeOlderSlate(one, 'auth', auth);
    await writeOlderSlate(one, 'workflow:login', { step: 1 });
    await redis.set(one.authLease, 'worker-1', 'PX', 10_000);
    await redis.set(one.rateLimited, '2', 'PX', 10_000);
    await writeOlderSlate(two, 'profile', profile);
    await redis.set(older('default', 'lease-only').authLease, 'worker-2', 'PX', 10_000);

    expect(await admin.indexOlderSessions()).toBe(2);
    expect(await redis.exists(keys.sessionsIndexed)).toBe(1);
    expect((await redis.zrange(keys.sessionRegistry, 0, -1)).sort()).toEqual(['default/old1', 'other/old2']);
    expect((await redis.smembers(one.index)).sort()).toEqual(['auth', 'cookies', 'workflow:login']);
    expect(await redis.pttl(one.index)).toBeGreaterThan(0);
    expect(await admin.list()).toEqual([
      { tenant: 'default', sessionId: 'old1', slates: ['auth', 'cookies', 'workflow:login'] },
      { tenant: 'other', sessionId: 'old2', slates: ['profile'] },
    ]);
    // Their values read as before: cookies as one legacy value, the rest as they were sealed.
    expect((await store.read(one, ['cookies', 'auth'])).get('cookies')).toEqual({
      name: 'cookies',
      version: 3,
      value: cookieJar,
      legacy: true,
    });

    // Never again: a session written by hand in the old layout now is not looked for.
    await writeOlderSlate(older('default', 'old3'), 'cookies', cookieJar);
    expect(await admin.indexOlderSessions()).toBe(0);
    expect((await admin.list()).map((s) => s.sessionId)).toEqual(['old1', 'old2']);
  });

  it('runs before a purge, so an older session is purged whole', async () => {
    const one = older('default', 'old1');
    const two = older('default', 'old2');
    await writeOlderSlate(one, 'cookies', cookieJar);
    await writeOlderSlate(one, 'workflow:login', { step: 1 });
    await redis.set(one.authLease, 'worker-1', 'PX', 10_000);
    await writeOlderSlate(two, 'cookies', cookieJar);
    const untouched = await redis.hgetall(two.slate('cookies'));

    // Two slates, the lease, and the index the purge made for it first.
    expect(await admin.purge(one)).toBe(4);
    expect((await sessionKeysInRedis()).filter((key) => key.startsWith(`${one.base}:`))).toEqual([]);
    expect(await redis.hgetall(two.slate('cookies'))).toEqual(untouched);
    expect(await redis.smembers(two.index)).toEqual(['cookies']);
    expect(await redis.zrange(keys.sessionRegistry, 0, -1)).toEqual(['default/old2']);
  });

  it('runs before a rotation, so older sessions are re-sealed too', async () => {
    const oldRing = parseKeyRing(oldEntry);
    const one = older('default', 'old1');
    await writeOlderSlate(one, 'cookies', cookieJar, 2, oldRing);
    await writeOlderSlate(one, 'auth', auth, 1, oldRing);

    expect(await admin.rotate(parseKeyRing(`${newEntry},${oldEntry}`))).toEqual({
      resealed: 2,
      current: 0,
      unreadable: 0,
      moved: 0,
    });
    const read = await new SlateStore(redis, keys, parseKeyRing(newEntry)).read(one, ['cookies', 'auth']);
    expect(read.get('cookies')).toMatchObject({ value: cookieJar, legacy: true });
    expect(read.get('auth')).toEqual({ name: 'auth', version: 2, value: auth });
  });
});

describe('writes of one session in one turn of the event loop', () => {
  it('go out as one command, and every job gets the answer of that write', async () => {
    const own = redis.duplicate();
    const watch = await watchCommands();
    try {
      const worker = new SlateStore(own, keys, ring);
      const session = worker.session('default', 'hot');
      const t0 = Date.now();
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          worker.commit(session, [cookies({ [`c${i}`]: i }), createProfile({ by: i }), counts(1, i % 2, t0 + i)]),
        ),
      );
      const sent = await watch.ran(session.base);
      expect(sent).toHaveLength(1);
      expect(sent[0]?.[0]).toMatch(/^eval(sha)?$/i);

      const meta = { createdAt: expect.any(String), lastUsedAt: iso(t0 + 19), jobs: 20, errors: 10 };
      for (const result of results) {
        expect(result).toMatchObject({
          ok: true,
          versions: new Map([
            ['cookies', 1],
            ['profile', 1],
            ['meta', 1],
          ]),
          created: true,
        });
        if (!result.ok) continue;
        expect(result.slates.get('profile')?.value).toEqual({ by: 0 });
        expect(result.slates.get('meta')?.value).toEqual(meta);
      }
      const read = await store.read(session, ['cookies', 'profile', 'meta']);
      expect(read.get('cookies')).toEqual({
        name: 'cookies',
        version: 1,
        value: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`c${i}`, i])),
      });
      expect(read.get('profile')?.value).toEqual({ by: 0 });
      expect(read.get('meta')?.value).toEqual(meta);
    } finally {
      await watch.close();
      await own.quit();
    }
  });

  it('go out as one command per session, and a compare-and-set goes out on its own', async () => {
    const own = redis.duplicate();
    const watch = await watchCommands();
    try {
      const worker = new SlateStore(own, keys, ring);
      const a = worker.session('default', 'a');
      const b = worker.session('default', 'b');
      const results = await Promise.all([
        worker.commit(a, [cookies({ x: 1 })]),
        worker.commit(b, [cookies({ y: 1 })]),
        worker.commit(a, [cas('auth', auth)]),
        worker.commit(a, [cookies({ z: 1 })]),
        worker.commit(b, [counts(1, 0, Date.now())]),
      ]);
      expect(results.every((result) => result.ok)).toBe(true);
      expect(await watch.ran(`${a.base}:`)).toHaveLength(2);
      expect(await watch.ran(`${b.base}:`)).toHaveLength(1);
      expect((await store.read(a, ['cookies'])).get('cookies')).toEqual({
        name: 'cookies',
        version: 1,
        value: { x: 1, z: 1 },
      });
    } finally {
      await watch.close();
      await own.quit();
    }
  });

  it('register the sessions they create with one ZADD', async () => {
    const own = redis.duplicate();
    // As a worker's session connection: the turn's commands in one socket write, so their
    // answers come back together.
    coalesceWrites(own);
    const watch = await watchCommands();
    try {
      const worker = new SlateStore(own, keys, ring);
      const sessions = ['n1', 'n2', 'n3'].map((id) => worker.session('default', id));
      const results = await Promise.all(sessions.map((session) => worker.commit(session, [counts(1, 0, Date.now())])));
      expect(results.every((result) => result.ok && result.created)).toBe(true);
      expect((await redis.zrange(keys.sessionRegistry, 0, -1)).sort()).toEqual([
        'default/n1',
        'default/n2',
        'default/n3',
      ]);
      const registered = (await watch.ran(keys.sessionRegistry)).filter((command) => /^zadd$/i.test(command[0] ?? ''));
      expect(registered).toHaveLength(1);
    } finally {
      await watch.close();
      await own.quit();
    }
  });

  it("fail only the job whose write is refused, not the other jobs' writes of its turn", async () => {
    const session = store.session('default', 's1');
    const [refused, accepted] = await Promise.allSettled([
      store.commit(session, [cookies({ v: 'reserved' })]),
      store.commit(session, [cookies({ sid: 'fine' }), counts(1, 0, Date.now())]),
    ]);
    expect(refused.status).toBe('rejected');
    expect(accepted).toMatchObject({ status: 'fulfilled', value: { ok: true } });
    expect((await store.read(session, ['cookies'])).get('cookies')?.value).toEqual({ sid: 'fine' });
  });
});

describe('hydrates of one session that start together', () => {
  it('share one read, and each job gets a map of its own', async () => {
    const session = store.session('default', 'shared');
    await commitOk(session, [cookies({ sid: 'x' }), createProfile(profile), counts(1, 0, Date.now())]);
    const own = redis.duplicate();
    const watch = await watchCommands();
    try {
      const worker = new SlateStore(own, keys, ring);
      const names: SlateName[] = ['cookies', 'profile', 'meta'];
      const [a, b, c] = await Promise.all([
        worker.hydrate(session, names),
        worker.hydrate(session, names),
        worker.hydrate(session, names),
      ]);
      expect(await watch.ran(session.base)).toHaveLength(1);
      for (const answer of [a, b, c]) {
        expect(answer?.quarantined).toBe(false);
        expect(answer?.slates.get('cookies')?.value).toEqual({ sid: 'x' });
        expect(answer?.slates.get('profile')?.value).toEqual(profile);
      }
      expect(a?.slates).not.toBe(b?.slates);
      a?.slates.delete('cookies');
      expect(b?.slates.has('cookies')).toBe(true);
    } finally {
      await watch.close();
      await own.quit();
    }
  });

  it("are not shared across this worker's own write of the session: a later job reads what it wrote", async () => {
    const session = store.session('default', 'written');
    await commitOk(session, [cookies({ sid: 'old' })]);
    const worker = new SlateStore(redis.duplicate(), keys, ring);
    try {
      const first = worker.hydrate(session, ['cookies']);
      await worker.commit(session, [cookies({ sid: 'new' })]);
      const later = worker.hydrate(session, ['cookies']);
      expect((await first).slates.get('cookies')?.value).toEqual({ sid: 'old' });
      expect((await later).slates.get('cookies')?.value).toEqual({ sid: 'new' });
    } finally {
      await worker.connection.quit();
    }
  });
});

describe('opened slates', () => {
  it('reuses what it opened while the stored envelope is unchanged, and reads a new one after any change', async () => {
    const session = store.session('default', 'reuse');
    await commitOk(session, [createProfile(profile)]);
    const reader = new SlateStore(redis, keys, ring);
    const first = (await reader.read(session, ['profile'])).get('profile');
    const again = (await reader.read(session, ['profile'])).get('profile');
    expect(again).toEqual({ name: 'profile', version: 1, value: profile });
    // The same frozen value: not received and decrypted a second time.
    expect(again?.value).toBe(first?.value);
    expect(Object.isFrozen(again?.value)).toBe(true);

    // Another store moves the slate on: the reader sees the new value, not its copy.
    const moved = { ...profile, userAgent: 'moved/2.0' };
    await commitOk(session, [cas('profile', moved, 1)]);
    expect((await reader.read(session, ['profile'])).get('profile')).toEqual({
      name: 'profile',
      version: 2,
      value: moved,
    });
    // Deleted behind its back: absent, not the remembered value.
    await redis.del(session.slate('profile'));
    expect((await reader.read(session, ['profile'])).get('profile')).toEqual({
      name: 'profile',
      version: 0,
      value: undefined,
    });
  });

  it("reuses the cookies it opened while unchanged, and reads another worker's field write", async () => {
    const session = store.session('default', 'reuse');
    await commitOk(session, [cookies({ sid: 'one' })]);
    const reader = new SlateStore(redis, keys, ring);
    const first = (await reader.read(session, ['cookies'])).get('cookies');
    expect((await reader.read(session, ['cookies'])).get('cookies')?.value).toBe(first?.value);

    await commitOk(session, [cookies({ theme: 'dark' })]);
    expect((await reader.read(session, ['cookies'])).get('cookies')).toEqual({
      name: 'cookies',
      version: 2,
      value: { sid: 'one', theme: 'dark' },
    });
  });

  it('reads cookies written again after a purge, not the ones it opened before at the same version', async () => {
    const session = store.session('default', 'reborn');
    await commitOk(session, [cookies({ sid: 'burnt' })]);
    const reader = new SlateStore(redis, keys, ring);
    expect((await reader.read(session, ['cookies'])).get('cookies')?.value).toEqual({ sid: 'burnt' });

    await admin.purge(session);
    await commitOk(session, [cookies({ sid: 'fresh' })]);
    expect((await reader.read(session, ['cookies'])).get('cookies')).toEqual({
      name: 'cookies',
      version: 1,
      value: { sid: 'fresh' },
    });
  });

  it('hands workflow state out fresh on every read: it goes to job code, which may change it', async () => {
    const session = store.session('default', 'flow');
    await commitOk(session, [cas('workflow:pages', { cursor: 3 })]);
    const first = (await store.read(session, ['workflow:pages'])).get('workflow:pages');
    const again = (await store.read(session, ['workflow:pages'])).get('workflow:pages');
    expect(again?.value).toEqual({ cursor: 3 });
    expect(again?.value).not.toBe(first?.value);
    expect(Object.isFrozen(again?.value)).toBe(false);
  });
});

describe('a sealed value that does not open', () => {
  function expectDiscarded(slate: unknown, reasons: string[]) {
    expect(slate).toMatchObject({
      value: undefined,
      discarded: { payloadHash: expect.stringMatching(/^[0-9a-f]{16}$/) },
    });
    expect(reasons).toContain((slate as { discarded: { reason: string } }).discarded.reason);
  }

  it('is discarded when tampered with, keeps its version, and a commit at that version replaces it', async () => {
    const session = store.session('default', 's1');
    await commitOk(session, [cas('auth', auth)]);
    const key = session.slate('auth');
    await redis.hset(key, 'd', tampered(await storedEnvelope(key)));

    const slate = (await store.read(session, ['auth'])).get('auth');
    expectDiscarded(slate, ['auth_failed']);
    expect(slate?.version).toBe(1);
    expect(JSON.stringify(slate)).not.toContain('bearer-token-0815');

    const fresh = { token: 'fresh-login' };
    expect((await commitOk(session, [cas('auth', fresh, slate?.version ?? -1)])).versions.get('auth')).toBe(2);
    expect((await store.read(session, ['auth'])).get('auth')).toEqual({ name: 'auth', version: 2, value: fresh });
  });

  it('is discarded when truncated', async () => {
    const session = store.session('default', 's1');
    await commitOk(session, [cas('auth', auth)]);
    const key = session.slate('auth');
    const envelope = await storedEnvelope(key);
    await redis.hset(key, 'd', envelope.slice(0, envelope.length - 10));
    expectDiscarded((await store.read(session, ['auth'])).get('auth'), ['malformed', 'auth_failed']);
    await redis.hset(key, 'd', envelope.slice(0, envelope.lastIndexOf('.')));
    expectDiscarded((await store.read(session, ['auth'])).get('auth'), ['malformed']);
  });

  it("is discarded when another session's value is copied under this session's key", async () => {
    const a = store.session('default', 'a');
    const b = store.session('default', 'b');
    await commitOk(a, [cas('auth', auth)]);
    await commitOk(b, [cas('auth', { token: 'b' })]);
    await redis.hset(b.slate('auth'), 'd', await storedEnvelope(a.slate('auth')));

    const slate = (await store.read(b, ['auth'])).get('auth');
    expectDiscarded(slate, ['auth_failed']);
    expect(slate?.version).toBe(1);
    expect((await store.read(a, ['auth'])).get('auth')?.value).toEqual(auth);
  });

  it("is discarded when another slate's value of the same session is copied over", async () => {
    const session = store.session('default', 's1');
    await commitOk(session, [cas('auth', auth), createProfile(profile)]);
    await redis.hset(session.slate('profile'), 'd', await storedEnvelope(session.slate('auth')));
    expectDiscarded((await store.read(session, ['profile'])).get('profile'), ['auth_failed']);
  });

  it("is discarded when a cookie field's envelope is copied in as the whole value", async () => {
    const session = store.session('default', 's1');
    await commitOk(session, [cookies({ sid: 'x' }), cas('auth', auth)]);
    await redis.hset(session.slate('auth'), 'd', await storedEnvelope(session.slate('cookies'), 'sid'));
    expectDiscarded((await store.read(session, ['auth'])).get('auth'), ['auth_failed']);
    // And the other way round: a whole value is not a field.
    await commitOk(session, [cas('workflow:login', { step: 1 })]);
    await redis.hset(session.slate('cookies'), 'sid', await storedEnvelope(session.slate('workflow:login')));
    expect((await new SlateStore(redis, keys, ring).read(session, ['cookies'])).get('cookies')).toMatchObject({
      value: {},
      discardedFields: ['sid'],
    });
  });

  it('is discarded when sealed with a key the ring does not hold', async () => {
    const session = store.session('default', 's1');
    const stranger = new SlateStore(redis, keys, parseKeyRing(strangerEntry));
    await commitOk(session, [createProfile(profile)], stranger);
    expectDiscarded((await store.read(session, ['profile'])).get('profile'), ['unknown_key']);
  });

  it('is discarded when it is plain JSON rather than an envelope', async () => {
    const session = store.session('default', 's1');
    await redis.hset(session.slate('profile'), 'v', 3, 'd', JSON.stringify(profile));
    const slate = (await store.read(session, ['profile'])).get('profile');
    expectDiscarded(slate, ['malformed']);
    expect(slate?.version).toBe(3);
  });
});

describe('session keys', () => {
  it('share one Redis Cluster hash tag {tenant/id}, so a multi-slate commit stays in one slot', async () => {
    expect(keySlot('123456789')).toBe(12739);
    const session = keys.session('default', 's1');
    const all = [
      session.slate('cookies'),
      session.slate('auth'),
      session.slate('profile'),
      session.slate('meta'),
      session.slate('workflow:login'),
      session.index,
      session.authLease,
      session.quarantine,
      session.rateLimited,
      session.breaker,
      session.breakerProbe,
    ];
    for (const key of all) {
      expect(key.startsWith(`${prefix}:session:{default/s1}:`)).toBe(true);
      expect(keySlot(key)).toBe(keySlot('{default/s1}'));
    }
    expect(new Set(all.map(keySlot)).size).toBe(1);
    const spread = new Set(
      Array.from({ length: 50 }, (_, i) => keySlot(keys.session('default', `s${i}`).slate('cookies'))),
    );
    expect(spread.size).toBeGreaterThan(40);
  });
});
