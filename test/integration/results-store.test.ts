import { encodeBody, pickStoredHeaders, ResultsStore, type StoredResult } from '@crawlfleet/results';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { cleanupPrefix, keyLayout, openTestRedis, uniquePrefix, watchCommands } from '../src/harness.js';
import { soleShard } from '../src/shard.js';
import { storedResult as result } from '../src/stored-result.js';

const LEDGER_TTL = 3_600;

let redis: Redis;
let prefix: string;
let keys: ReturnType<typeof keyLayout>;
let store: ResultsStore;

beforeAll(() => {
  redis = openTestRedis();
});

afterAll(async () => {
  await redis.quit();
});

beforeEach(() => {
  prefix = uniquePrefix('results');
  keys = keyLayout(prefix);
  store = new ResultsStore(redis, keys, { ledgerTtlSeconds: LEDGER_TTL });
});

afterEach(async () => {
  await cleanupPrefix(redis, prefix);
});

async function storedEntries(): Promise<Array<{ entryId: string; result: StoredResult }>> {
  const raw = await redis.xrange(soleShard(keys).results, '-', '+');
  return raw.map(([entryId, fields]) => ({ entryId, result: JSON.parse(fields[1] ?? 'null') as StoredResult }));
}

describe('ResultsStore.write', () => {
  it('appends one stream entry and marks the key finished in the ledger with its TTL', async () => {
    const written = result('ik-first');

    const outcome = await store.write(written);

    expect(outcome.written).toBe(true);
    expect(outcome.entryId).toMatch(/^\d+-\d+$/);
    expect(await redis.xlen(soleShard(keys).results)).toBe(1);
    expect(await storedEntries()).toEqual([{ entryId: outcome.entryId, result: written }]);
    expect(await redis.get(keys.ledger('ik-first'))).toBe(outcome.entryId);
    const ttl = await redis.ttl(keys.ledger('ik-first'));
    expect(ttl).toBeGreaterThan(LEDGER_TTL - 10);
    expect(ttl).toBeLessThanOrEqual(LEDGER_TTL);
    expect(await store.isFinished('ik-first')).toBe(true);
    expect(await store.isFinished('ik-never-written')).toBe(false);
    expect(await store.count()).toBe(1);
  });

  it('writes nothing for a key that is already finished and returns the first entry id', async () => {
    const first = await store.write(result('ik-twice', { body: 'first' }));

    const second = await store.write(result('ik-twice', { body: 'second' }));

    expect(second).toEqual({ written: false, entryId: first.entryId, admitted: 0 });
    expect(await redis.xlen(soleShard(keys).results)).toBe(1);
    const [only] = await storedEntries();
    expect(only?.result.body).toBe('first');
    expect(await redis.get(keys.ledger('ik-twice'))).toBe(first.entryId);
  });

  it('produces exactly one entry from 50 concurrent writes of one key over several connections', async () => {
    const connections = Array.from({ length: 5 }, () => openTestRedis());
    try {
      const stores = connections.map(
        (connection) => new ResultsStore(connection, keys, { ledgerTtlSeconds: LEDGER_TTL }),
      );

      const outcomes = await Promise.all(
        Array.from({ length: 50 }, (_, i) => stores[i % stores.length]?.write(result('ik-race', { attempts: i + 1 }))),
      );

      const winners = outcomes.filter((outcome) => outcome?.written === true);
      expect(winners).toHaveLength(1);
      const entryId = winners[0]?.entryId;
      expect(new Set(outcomes.map((outcome) => outcome?.entryId))).toEqual(new Set([entryId]));
      expect(await redis.xlen(soleShard(keys).results)).toBe(1);
      expect(await redis.get(keys.ledger('ik-race'))).toBe(entryId);
    } finally {
      await Promise.all(connections.map((connection) => connection.quit()));
    }
  });

  it('writes the results of one turn in one command, each written or refused on its own', async () => {
    await store.write(result('ik-turn-done'));
    const watch = await watchCommands();
    try {
      // 70 results in one turn (one of them finished before, one given twice): 64 per call at most.
      const written = Array.from({ length: 68 }, (_, i) => result(`ik-turn-${i}`));
      const outcomes = await Promise.all([
        ...written.map((r) => store.write(r)),
        store.write(result('ik-turn-done', { body: 'again' })),
        store.write(result('ik-turn-0', { body: 'twice' })),
      ]);
      expect(outcomes.slice(0, 68).every((outcome) => outcome.written)).toBe(true);
      expect(outcomes[68]?.written).toBe(false);
      expect(outcomes[69]).toEqual({ written: false, entryId: outcomes[0]?.entryId, admitted: 0 });
      expect(new Set(outcomes.slice(0, 68).map((outcome) => outcome.entryId)).size).toBe(68);
      const entries = await storedEntries();
      expect(entries.map((entry) => entry.result.idempotencyKey)).toEqual([
        'ik-turn-done',
        ...written.map((r) => r.idempotencyKey),
      ]);
      for (const [i, r] of written.entries())
        expect(await redis.get(keys.ledger(r.idempotencyKey))).toBe(outcomes[i]?.entryId);
      const calls = (await watch.ran(soleShard(keys).results)).filter((command) => /^eval/i.test(command[0] ?? ''));
      expect(calls).toHaveLength(2);
    } finally {
      await watch.close();
    }
  });

  it('splits a turn of large results into calls of a few MiB', async () => {
    const body = 'x'.repeat(1024 * 1024);
    const outcomes = await Promise.all(
      Array.from({ length: 10 }, (_, i) => store.write(result(`ik-large-${i}`, { body }))),
    );
    expect(outcomes.every((outcome) => outcome.written)).toBe(true);
    const entries = await storedEntries();
    expect(entries).toHaveLength(10);
    expect(entries.every((entry) => entry.result.body === body)).toBe(true);
  });

  it('never trims on write, and tells what the outbox holds after each write', async () => {
    const fills: Array<{ entries: number; bytes: number }> = [];
    const watched = new ResultsStore(redis, keys, { ledgerTtlSeconds: LEDGER_TTL, onFill: (fill) => fills.push(fill) });

    const written = await Promise.all(Array.from({ length: 1_000 }, (_, i) => watched.write(result(`ik-keep-${i}`))));

    expect(await redis.xlen(soleShard(keys).results)).toBe(1_000);
    expect(await watched.isFinished('ik-keep-0')).toBe(true);
    expect(written.every((outcome) => outcome.written)).toBe(true);
    const bytes = Number(await redis.get(soleShard(keys).resultsBytes));
    const raw = await redis.xrange(soleShard(keys).results, '-', '+');
    expect(bytes).toBe(raw.reduce((sum, [, fields]) => sum + Buffer.byteLength(fields[1] ?? ''), 0));
    expect(fills.at(-1)).toEqual({ entries: 1_000, bytes });
  });
});

describe('ResultsStore.entries', () => {
  it('pages through 1,234 results oldest first with nothing missing or repeated', async () => {
    const written = await Promise.all(Array.from({ length: 1_234 }, (_, i) => store.write(result(`ik-page-${i}`))));

    const seen: Array<{ entryId: string; key: string }> = [];
    for await (const entry of store.entries({ pageSize: 100 }))
      seen.push({ entryId: entry.entryId, key: entry.result.idempotencyKey });

    expect(seen).toHaveLength(1_234);
    expect(seen.map((entry) => entry.entryId)).toEqual(written.map((outcome) => outcome.entryId));
    expect(seen.map((entry) => entry.key)).toEqual(Array.from({ length: 1_234 }, (_, i) => `ik-page-${i}`));
    expect(await store.count()).toBe(1_234);
  });

  it('ends cleanly when the count is an exact multiple of the page size', async () => {
    for (let i = 0; i < 200; i++) await store.write(result(`ik-exact-${i}`));

    const seen: string[] = [];
    for await (const entry of store.entries({ pageSize: 100 })) seen.push(entry.result.idempotencyKey);

    expect(seen).toEqual(Array.from({ length: 200 }, (_, i) => `ik-exact-${i}`));
  });

  it('yields nothing when no result was ever written', async () => {
    const seen: unknown[] = [];
    for await (const entry of store.entries()) seen.push(entry);

    expect(seen).toEqual([]);
    expect(await store.count()).toBe(0);
  });
});

describe('encodeBody', () => {
  it('keeps a utf-8 html body as text', () => {
    const html = '<p>héllo ✓ wörld</p>';

    expect(encodeBody(Buffer.from(html, 'utf8'), 'text/html; charset=utf-8', 1_024)).toEqual({
      body: html,
      bodyEncoding: 'utf8',
      bodyTruncated: false,
    });
  });

  it('decodes a text body in its declared charset', () => {
    const latin1 = Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0xfc, 0x62, 0x65, 0x72]);

    expect(encodeBody(latin1, 'text/plain; charset=iso-8859-1', 1_024)).toEqual({
      body: 'café über',
      bodyEncoding: 'utf8',
      bodyTruncated: false,
    });
    expect(encodeBody(latin1, 'text/plain; charset="ISO-8859-1"', 1_024).body).toBe('café über');
  });

  it('decodes utf-8 exactly as TextDecoder does: a leading BOM dropped, bad bytes and a cut character replaced', () => {
    const text = Buffer.from('\uFEFFhé ✓ \uFEFF mid', 'utf8');
    const bad = Buffer.concat([Buffer.from('a'), Buffer.from([0xff, 0xc3]), Buffer.from('b ✓')]);
    const cut = Buffer.from('ab✓', 'utf8').subarray(0, 4);
    for (const bytes of [text, bad, cut, Buffer.alloc(0), Buffer.from([0xef, 0xbb])]) {
      const expected = new TextDecoder('utf-8').decode(bytes);
      expect(encodeBody(bytes, 'text/html; charset=UTF-8', 1_024).body).toBe(expected);
      expect(encodeBody(bytes, 'text/html', 1_024).body).toBe(expected);
    }
    expect(encodeBody(text, 'text/plain', 1_024).body).toBe('hé ✓ \uFEFF mid');
  });

  it('falls back to utf-8 for an unknown charset', () => {
    expect(encodeBody(Buffer.from('naïve', 'utf8'), 'text/plain; charset=no-such-charset', 1_024).body).toBe('naïve');
  });

  it('keeps JSON and +json/+xml types as text', () => {
    const json = '{"a":[1,2,"ü"]}';

    expect(encodeBody(Buffer.from(json), 'application/json', 1_024)).toEqual({
      body: json,
      bodyEncoding: 'utf8',
      bodyTruncated: false,
    });
    expect(encodeBody(Buffer.from(json), 'application/ld+json; charset=utf-8', 1_024).bodyEncoding).toBe('utf8');
    expect(encodeBody(Buffer.from('<a/>'), 'application/atom+xml', 1_024).bodyEncoding).toBe('utf8');
  });

  it('stores a binary body as base64 that round-trips byte for byte', () => {
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xff, 0xfe, 0x80, 0x7f]);

    const encoded = encodeBody(png, 'image/png', 1_024);

    expect(encoded.bodyEncoding).toBe('base64');
    expect(encoded.bodyTruncated).toBe(false);
    expect(Buffer.from(encoded.body, 'base64').equals(png)).toBe(true);
  });

  it('treats a body without a content type as binary', () => {
    const bytes = Buffer.from([0, 1, 2, 250]);

    const encoded = encodeBody(bytes, undefined, 1_024);

    expect(encoded.bodyEncoding).toBe('base64');
    expect(Buffer.from(encoded.body, 'base64').equals(bytes)).toBe(true);
  });

  it('caps the body at maxBytes and says it was truncated', () => {
    expect(encodeBody(Buffer.from('abcdefghij'), 'text/plain', 4)).toEqual({
      body: 'abcd',
      bodyEncoding: 'utf8',
      bodyTruncated: true,
    });
    expect(encodeBody(Buffer.from('abcd'), 'text/plain', 4).bodyTruncated).toBe(false);

    const binary = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]);
    const capped = encodeBody(binary, 'application/octet-stream', 3);
    expect(capped.bodyTruncated).toBe(true);
    expect(Buffer.from(capped.body, 'base64').equals(binary.subarray(0, 3))).toBe(true);
  });
});

describe('pickStoredHeaders', () => {
  it('keeps only allowlisted headers, dropping cookies and credentials, and joins repeated ones', () => {
    const kept = pickStoredHeaders({
      'content-type': 'text/html; charset=utf-8',
      'set-cookie': ['sid=secret; HttpOnly', 'theme=dark'],
      authorization: 'Bearer secret',
      'proxy-authorization': 'Basic secret',
      'x-powered-by': 'php',
      vary: ['accept', 'accept-encoding'],
      link: ['</a>; rel=next', '</b>; rel=prev'],
      etag: '"abc"',
      expires: undefined,
    });

    expect(kept).toEqual({
      'content-type': 'text/html; charset=utf-8',
      vary: 'accept, accept-encoding',
      link: '</a>; rel=next, </b>; rel=prev',
      etag: '"abc"',
    });
  });
});
