import { randomBytes } from 'node:crypto';
import type { SessionKeys } from '@crawlfleet/core';
import { envelopeKid, listSessions, parseKeyRing, purgeSession, type SlateName, SlateStore } from '@crawlfleet/slates';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { cleanupPrefix, keyLayout, openTestRedis, uniquePrefix } from '../src/harness.js';

const TTL_MS = 600_000;
const oldEntry = `old:${randomBytes(32).toString('base64')}`;
const newEntry = `new:${randomBytes(32).toString('base64')}`;

let redis: Redis;
let prefix: string;
let keys: ReturnType<typeof keyLayout>;
let store: SlateStore;

beforeAll(() => {
  redis = openTestRedis();
});

afterAll(async () => {
  await redis.quit();
});

beforeEach(() => {
  prefix = uniquePrefix('slates');
  keys = keyLayout(prefix);
  store = new SlateStore(redis, keys, parseKeyRing(newEntry));
});

afterEach(async () => {
  await cleanupPrefix(redis, prefix);
});

const cookies = { cookies: [{ key: 'sid', value: 'cookie-secret-4711', domain: '127.0.0.1' }] };
const auth = { token: 'bearer-token-0815', expiresAt: 1_900_000_000_000 };
const profile = { userAgent: 'crawlfleet-test/1.0', proxy: 'proxy-affinity-42' };

/** Commits new slates (expected version 0) and fails the test when the commit conflicts. */
async function create(session: SessionKeys, values: Partial<Record<SlateName, unknown>>, on: SlateStore = store) {
  const writes = Object.entries(values).map(([name, value]) => ({
    name: name as SlateName,
    expectedVersion: 0,
    value,
    ttlMs: TTL_MS,
  }));
  const result = await on.commit(session, writes);
  if (!result.ok) throw new Error(`unexpected conflict on ${result.conflict}`);
  return result;
}

async function storedEnvelope(key: string): Promise<string> {
  const d = await redis.hget(key, 'd');
  if (d === null) throw new Error(`${key} has no envelope`);
  return d;
}

/** Every key under the test prefix. */
async function sessionKeysInRedis(pattern = `${prefix}:*`): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    found.push(...batch);
  } while (cursor !== '0');
  return found.sort();
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

describe('SlateStore.read', () => {
  it('reports an absent slate as version 0 with no value', async () => {
    const session = store.session('default', 's1');
    const slates = await store.read(session, ['cookies', 'auth', 'workflow:login']);
    expect([...slates.keys()]).toEqual(['cookies', 'auth', 'workflow:login']);
    for (const slate of slates.values()) {
      expect(slate.version).toBe(0);
      expect(slate.value).toBeUndefined();
      expect(slate.discarded).toBeUndefined();
    }
  });

  it('reads several slates in one round trip', async () => {
    const session = store.session('default', 's1');
    await create(session, { cookies, auth, profile });
    const own = openTestRedis();
    try {
      const reader = new SlateStore(own, keys, parseKeyRing(newEntry));
      await own.ping();
      const write = vi.spyOn(own.stream, 'write');
      const slates = await reader.read(session, ['cookies', 'auth', 'profile', 'meta']);
      expect(write).toHaveBeenCalledTimes(1);
      expect(slates.get('cookies')?.value).toEqual(cookies);
      expect(slates.get('auth')?.value).toEqual(auth);
      expect(slates.get('profile')?.value).toEqual(profile);
      expect(slates.get('meta')?.version).toBe(0);
    } finally {
      await own.quit();
    }
  });
});

describe('SlateStore.commit', () => {
  it('creates new slates at version 1 as {v, d} hashes whose d is an envelope, never the plain JSON', async () => {
    const session = store.session('default', 's1');
    const result = await create(session, { cookies, auth });
    expect(result.versions).toEqual(
      new Map([
        ['cookies', 1],
        ['auth', 1],
      ]),
    );
    for (const name of ['cookies', 'auth'] as const) {
      const key = session.slate(name);
      const hash = await redis.hgetallBuffer(key);
      expect(Object.keys(hash).sort()).toEqual(['d', 'v']);
      expect(hash.v?.toString()).toBe('1');
      const d = hash.d?.toString('utf8') ?? '';
      expect(envelopeKid(d)).toBe('new');
      expect(d).toMatch(/^cf1\.new\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    }
    const stored = await Promise.all(['cookies', 'auth'].map((n) => redis.hgetallBuffer(session.slate(n))));
    const everything = Buffer.concat(stored.flatMap((hash) => Object.values(hash)));
    for (const secret of ['cookie-secret-4711', 'bearer-token-0815', 'token', '1900000000000']) {
      expect(everything.includes(secret)).toBe(false);
    }
  });

  it('sets each slate TTL', async () => {
    const session = store.session('default', 's1');
    await store.commit(session, [
      { name: 'cookies', expectedVersion: 0, value: cookies, ttlMs: TTL_MS },
      { name: 'workflow:pages', expectedVersion: 0, value: { cursor: 3 }, ttlMs: 30_000 },
    ]);
    const cookiesTtl = await redis.pttl(session.slate('cookies'));
    const workflowTtl = await redis.pttl(session.slate('workflow:pages'));
    expect(cookiesTtl).toBeGreaterThan(TTL_MS - 5_000);
    expect(cookiesTtl).toBeLessThanOrEqual(TTL_MS);
    expect(workflowTtl).toBeGreaterThan(25_000);
    expect(workflowTtl).toBeLessThanOrEqual(30_000);
  });

  it('updates from the version read, and the new value reads back', async () => {
    const session = store.session('default', 's1');
    await create(session, { cookies });
    const read = await store.read(session, ['cookies']);
    const updated = { cookies: [] };
    const result = await store.commit(session, [
      { name: 'cookies', expectedVersion: read.get('cookies')?.version ?? -1, value: updated, ttlMs: TTL_MS },
    ]);
    expect(result).toEqual({ ok: true, versions: new Map([['cookies', 2]]) });
    const again = await store.read(session, ['cookies']);
    expect(again.get('cookies')).toMatchObject({ version: 2, value: updated });
  });

  it('refuses a stale version, names the slate and its current version, and writes nothing of that commit', async () => {
    const session = store.session('default', 's1');
    await create(session, { cookies, auth });
    await store.commit(session, [
      { name: 'auth', expectedVersion: 1, value: { ...auth, token: 'newer' }, ttlMs: TTL_MS },
    ]);
    const before = await Promise.all(['cookies', 'auth', 'profile'].map((n) => redis.hgetall(session.slate(n))));
    const beforeTtl = await redis.pttl(session.slate('cookies'));

    const result = await store.commit(session, [
      { name: 'cookies', expectedVersion: 1, value: { cookies: [] }, ttlMs: 5_000 },
      { name: 'profile', expectedVersion: 0, value: profile, ttlMs: TTL_MS },
      { name: 'auth', expectedVersion: 1, value: { token: 'stale' }, ttlMs: TTL_MS },
    ]);

    expect(result).toEqual({ ok: false, conflict: 'auth', version: 2 });
    const after = await Promise.all(['cookies', 'auth', 'profile'].map((n) => redis.hgetall(session.slate(n))));
    expect(after).toEqual(before);
    expect(await redis.exists(session.slate('profile'))).toBe(0);
    expect(await redis.pttl(session.slate('cookies'))).toBeGreaterThan(beforeTtl - 5_000);
    expect(await redis.pttl(session.slate('cookies'))).toBeGreaterThan(5_000);
  });

  it('refuses to create a slate that another worker created meanwhile', async () => {
    const session = store.session('default', 's1');
    await create(session, { profile });
    const result = await store.commit(session, [
      { name: 'profile', expectedVersion: 0, value: { other: true }, ttlMs: TTL_MS },
    ]);
    expect(result).toEqual({ ok: false, conflict: 'profile', version: 1 });
    expect((await store.read(session, ['profile'])).get('profile')?.value).toEqual(profile);
  });

  it('deletes a slate committed with value undefined, reporting version 0', async () => {
    const session = store.session('default', 's1');
    await create(session, { cookies, 'workflow:login': { step: 2 } });
    const result = await store.commit(session, [
      { name: 'workflow:login', expectedVersion: 1, value: undefined, ttlMs: TTL_MS },
      { name: 'cookies', expectedVersion: 1, value: cookies, ttlMs: TTL_MS },
    ]);
    expect(result).toEqual({
      ok: true,
      versions: new Map([
        ['workflow:login', 0],
        ['cookies', 2],
      ]),
    });
    expect(await redis.exists(session.slate('workflow:login'))).toBe(0);
    const read = await store.read(session, ['workflow:login', 'cookies']);
    expect(read.get('workflow:login')).toEqual({ name: 'workflow:login', version: 0, value: undefined });
    expect(read.get('cookies')?.value).toEqual(cookies);
  });

  it('keeps null, numbers and strings as they were', async () => {
    const session = store.session('default', 's1');
    await create(session, { meta: null, 'workflow:a': 0, 'workflow:b': '', 'workflow:c': [1, 'two', { three: 3 }] });
    const read = await store.read(session, ['meta', 'workflow:a', 'workflow:b', 'workflow:c']);
    expect(read.get('meta')).toMatchObject({ version: 1, value: null });
    expect(read.get('workflow:a')?.value).toBe(0);
    expect(read.get('workflow:b')?.value).toBe('');
    expect(read.get('workflow:c')?.value).toEqual([1, 'two', { three: 3 }]);
  });

  it('lets exactly one of 20 concurrent commits from the same read version win', async () => {
    const session = store.session('default', 's1');
    await create(session, { cookies });
    const { version } = (await store.read(session, ['cookies'])).get('cookies') ?? { version: -1 };
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        store.commit(session, [{ name: 'cookies', expectedVersion: version, value: { writer: i }, ttlMs: TTL_MS }]),
      ),
    );
    const winners = results.flatMap((r, i) => (r.ok ? [i] : []));
    expect(winners).toHaveLength(1);
    for (const r of results) if (!r.ok) expect(r).toEqual({ ok: false, conflict: 'cookies', version: 2 });
    const read = (await store.read(session, ['cookies'])).get('cookies');
    expect(read).toMatchObject({ version: 2, value: { writer: winners[0] } });
  });
});

describe('opened slates', () => {
  it('reuses what it opened while the stored envelope is unchanged, and reads a new one after any change', async () => {
    const session = store.session('default', 'reuse');
    await create(session, { profile });
    const reader = new SlateStore(redis, keys, parseKeyRing(newEntry));
    const first = (await reader.read(session, ['profile'])).get('profile');
    const again = (await reader.read(session, ['profile'])).get('profile');
    expect(again).toEqual({ name: 'profile', version: 1, value: profile });
    // The same frozen value: not received and decrypted a second time.
    expect(again?.value).toBe(first?.value);
    expect(Object.isFrozen(again?.value)).toBe(true);

    // Another store moves the slate on: the reader sees the new value, not its copy.
    const moved = { ...profile, userAgent: 'moved/2.0' };
    const result = await store.commit(session, [{ name: 'profile', expectedVersion: 1, value: moved, ttlMs: TTL_MS }]);
    expect(result.ok).toBe(true);
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

  it('hands workflow state out fresh on every read: it goes to job code, which may change it', async () => {
    const session = store.session('default', 'flow');
    await create(session, { 'workflow:pages': { cursor: 3 } });
    const first = (await store.read(session, ['workflow:pages'])).get('workflow:pages');
    const again = (await store.read(session, ['workflow:pages'])).get('workflow:pages');
    expect(again?.value).toEqual({ cursor: 3 });
    expect(again?.value).not.toBe(first?.value);
    expect(Object.isFrozen(again?.value)).toBe(false);
  });
});

describe('a stored value that does not open', () => {
  function expectDiscarded(slate: unknown, reasons: string[]) {
    expect(slate).toMatchObject({
      value: undefined,
      discarded: { payloadHash: expect.stringMatching(/^[0-9a-f]{16}$/) },
    });
    expect(reasons).toContain((slate as { discarded: { reason: string } }).discarded.reason);
  }

  it('is discarded when tampered with, keeps its version, and a commit at that version replaces it', async () => {
    const session = store.session('default', 's1');
    await create(session, { auth });
    const key = session.slate('auth');
    const parts = (await storedEnvelope(key)).split('.');
    const body = parts[3] as string;
    parts[3] = (body[0] === 'A' ? 'B' : 'A') + body.slice(1);
    await redis.hset(key, 'd', parts.join('.'));

    const slate = (await store.read(session, ['auth'])).get('auth');
    expectDiscarded(slate, ['auth_failed']);
    expect(slate?.version).toBe(1);
    expect(JSON.stringify(slate)).not.toContain('bearer-token-0815');

    const fresh = { token: 'fresh-login' };
    const result = await store.commit(session, [
      { name: 'auth', expectedVersion: slate?.version ?? -1, value: fresh, ttlMs: TTL_MS },
    ]);
    expect(result.ok).toBe(true);
    expect((await store.read(session, ['auth'])).get('auth')).toEqual({ name: 'auth', version: 2, value: fresh });
  });

  it('is discarded when truncated', async () => {
    const session = store.session('default', 's1');
    await create(session, { cookies });
    const key = session.slate('cookies');
    const envelope = await storedEnvelope(key);
    await redis.hset(key, 'd', envelope.slice(0, envelope.length - 10));
    expectDiscarded((await store.read(session, ['cookies'])).get('cookies'), ['malformed', 'auth_failed']);
    await redis.hset(key, 'd', envelope.slice(0, envelope.lastIndexOf('.')));
    expectDiscarded((await store.read(session, ['cookies'])).get('cookies'), ['malformed']);
  });

  it("is discarded when another session's value is copied under this session's key", async () => {
    const a = store.session('default', 'a');
    const b = store.session('default', 'b');
    await create(a, { cookies });
    await create(b, { cookies: { cookies: [] } });
    await redis.hset(b.slate('cookies'), 'd', await storedEnvelope(a.slate('cookies')));

    const slate = (await store.read(b, ['cookies'])).get('cookies');
    expectDiscarded(slate, ['auth_failed']);
    expect(slate?.version).toBe(1);
    expect((await store.read(a, ['cookies'])).get('cookies')?.value).toEqual(cookies);
  });

  it("is discarded when another slate's value of the same session is copied over", async () => {
    const session = store.session('default', 's1');
    await create(session, { cookies, auth });
    await redis.hset(session.slate('cookies'), 'd', await storedEnvelope(session.slate('auth')));
    expectDiscarded((await store.read(session, ['cookies'])).get('cookies'), ['auth_failed']);
  });

  it('is discarded when sealed with a key the ring does not hold', async () => {
    const session = store.session('default', 's1');
    const stranger = new SlateStore(redis, keys, parseKeyRing(`stranger:${randomBytes(32).toString('base64')}`));
    await create(session, { profile }, stranger);
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

describe('SlateStore.purge', () => {
  it('removes every key of one session, lease included, and nothing of any other', async () => {
    const a = store.session('default', 'a');
    const b = store.session('default', 'b');
    const other = store.session('other', 'a');
    await create(a, { cookies, auth, 'workflow:login': { step: 1 } });
    await redis.set(a.authLease, 'worker-1', 'PX', 10_000);
    await create(b, { cookies });
    await create(other, { cookies });

    expect(await purgeSession(redis, a)).toBe(4);
    expect(await sessionKeysInRedis()).toEqual([b.slate('cookies'), other.slate('cookies')].sort());
    expect(await purgeSession(redis, a)).toBe(0);
  });

  it('does not touch a session whose id starts with the purged one', async () => {
    const a = store.session('default', 'a');
    const ab = store.session('default', 'a.b');
    await create(a, { cookies });
    await create(ab, { cookies });
    expect(await purgeSession(redis, a)).toBe(1);
    expect(await sessionKeysInRedis()).toEqual([ab.slate('cookies')]);
  });
});

describe('SlateStore.sessions', () => {
  it('lists every session with its slate names, sorted, and filters by tenant', async () => {
    const b = store.session('default', 'b');
    const a = store.session('default', 'a');
    const other = store.session('other', 'x');
    await create(b, { cookies });
    await create(a, { cookies, auth, 'workflow:login': { step: 1 } });
    await redis.set(a.authLease, 'worker-1', 'PX', 10_000);
    await create(other, { profile });
    await redis.set(store.session('default', 'lease-only').authLease, 'worker-2', 'PX', 10_000);

    const all = await listSessions(redis, keys);
    expect(all.map((s) => `${s.tenant}/${s.sessionId}`)).toEqual(['default/a', 'default/b', 'other/x']);
    expect(all[0]?.slates.sort()).toEqual(['auth', 'cookies', 'workflow:login']);
    expect(all[1]?.slates).toEqual(['cookies']);
    expect(all[2]?.slates).toEqual(['profile']);

    const onlyOther = await listSessions(redis, keys, 'other');
    expect(onlyOther).toEqual([{ tenant: 'other', sessionId: 'x', slates: ['profile'] }]);
    expect(await listSessions(redis, keys, 'nobody')).toEqual([]);
  });

  it('lists only the sessions of its own prefix', async () => {
    const neighbour = `${prefix}x`;
    const elsewhere = new SlateStore(redis, keyLayout(neighbour), parseKeyRing(newEntry));
    try {
      await create(elsewhere.session('default', 'n'), { cookies }, elsewhere);
      await create(store.session('default', 'mine'), { cookies });
      expect((await listSessions(redis, keys)).map((s) => s.sessionId)).toEqual(['mine']);
    } finally {
      await cleanupPrefix(redis, neighbour);
    }
  });
});

describe('SlateStore.rotate', () => {
  it('re-seals every slate with the new key, keeping values, versions moving on, and TTLs', async () => {
    const oldStore = new SlateStore(redis, keys, parseKeyRing(oldEntry));
    const a = oldStore.session('default', 'a');
    const b = oldStore.session('other', 'b');
    await create(a, { cookies, auth }, oldStore);
    await create(b, { profile }, oldStore);
    await redis.set(a.authLease, 'worker-1', 'PX', 10_000);
    const slateKeys = [a.slate('cookies'), a.slate('auth'), b.slate('profile')];
    const ttlsBefore = await Promise.all(slateKeys.map((k) => redis.pttl(k)));

    const rotating = new SlateStore(redis, keys, parseKeyRing(`${newEntry},${oldEntry}`));
    const progress: number[] = [];
    const tally = await rotating.rotate((done) => progress.push(done));

    expect(tally).toEqual({ resealed: 3, current: 0, unreadable: 0, moved: 0 });
    expect(progress).toHaveLength(3);
    for (const [i, key] of slateKeys.entries()) {
      expect(envelopeKid(await storedEnvelope(key))).toBe('new');
      const ttl = await redis.pttl(key);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(ttlsBefore[i] as number);
      expect(ttl).toBeGreaterThan((ttlsBefore[i] as number) - 5_000);
    }
    expect(await redis.get(a.authLease)).toBe('worker-1');

    const newOnly: SlateStore = new SlateStore(redis, keys, parseKeyRing(newEntry));
    const readA = await newOnly.read(a, ['cookies', 'auth']);
    expect(readA.get('cookies')).toEqual({ name: 'cookies', version: 2, value: cookies });
    expect(readA.get('auth')).toEqual({ name: 'auth', version: 2, value: auth });
    expect((await newOnly.read(b, ['profile'])).get('profile')).toEqual({
      name: 'profile',
      version: 2,
      value: profile,
    });

    expect(await rotating.rotate()).toEqual({ resealed: 0, current: 3, unreadable: 0, moved: 0 });
  });

  it('leaves a slate it cannot open alone and counts it', async () => {
    const session = store.session('default', 's1');
    const stranger = new SlateStore(redis, keys, parseKeyRing(`stranger:${randomBytes(32).toString('base64')}`));
    await create(session, { cookies }, stranger);
    const before = await redis.hgetall(session.slate('cookies'));
    expect(await store.rotate()).toEqual({ resealed: 0, current: 0, unreadable: 1, moved: 0 });
    expect(await redis.hgetall(session.slate('cookies'))).toEqual(before);
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
      session.authLease,
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
