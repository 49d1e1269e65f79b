import keySlot from 'cluster-key-slot';
import { describe, expect, it } from 'vitest';
import {
  CRAWL_QUEUE,
  DEFAULT_PREFIX,
  DEFAULT_REDIS_URL,
  isValidPrefix,
  keyLayout,
  readEnvironment,
} from '../src/index.js';
import { expectInputError } from './expect-input-error.js';

describe('readEnvironment', () => {
  it('falls back to local Redis and the cf prefix in an empty environment', () => {
    expect(readEnvironment({})).toEqual({
      redisUrl: 'redis://127.0.0.1:6379',
      redisUrlFromEnv: false,
      sessionRedisUrl: 'redis://127.0.0.1:6379',
      sessionRedisUrlFromEnv: false,
      prefix: 'cf',
    });
    expect(DEFAULT_REDIS_URL).toBe('redis://127.0.0.1:6379');
    expect(DEFAULT_PREFIX).toBe('cf');
  });

  it('treats empty variables as unset', () => {
    expect(readEnvironment({ REDIS_URL: '', CRAWLFLEET_PREFIX: '', CRAWLFLEET_SESSION_REDIS_URL: '' })).toEqual(
      readEnvironment({}),
    );
  });

  it('uses REDIS_URL and says it came from the environment', () => {
    const env = readEnvironment({ REDIS_URL: 'rediss://redis.internal:6380/2' });
    expect(env.redisUrl).toBe('rediss://redis.internal:6380/2');
    expect(env.redisUrlFromEnv).toBe(true);
  });

  it('uses REDIS_URL for sessions when no session URL is set', () => {
    expect(readEnvironment({ REDIS_URL: 'redis://queue:6379' }).sessionRedisUrl).toBe('redis://queue:6379');
  });

  it('uses CRAWLFLEET_SESSION_REDIS_URL for sessions when set', () => {
    const env = readEnvironment({
      REDIS_URL: 'redis://queue:6379',
      CRAWLFLEET_SESSION_REDIS_URL: 'redis://sessions:6379',
    });
    expect(env.redisUrl).toBe('redis://queue:6379');
    expect(env.sessionRedisUrl).toBe('redis://sessions:6379');
  });

  it('uses CRAWLFLEET_PREFIX', () => {
    expect(readEnvironment({ CRAWLFLEET_PREFIX: 'staging.cf-2' }).prefix).toBe('staging.cf-2');
  });

  it.each(['a b', 'x:y', '{cf}', 'p'.repeat(65), 'a/b'])('rejects the prefix %j', (prefix) => {
    const error = expectInputError(() => readEnvironment({ CRAWLFLEET_PREFIX: prefix }), 'invalid_prefix');
    expect(error.message).toContain('CRAWLFLEET_PREFIX');
  });

  it.each(['http://127.0.0.1:6379', '127.0.0.1:6379', 'localhost', 'redis:/x'])('rejects the REDIS_URL %j', (url) => {
    const error = expectInputError(() => readEnvironment({ REDIS_URL: url }), 'invalid_redis_url');
    expect(error.message).toContain('REDIS_URL');
  });

  it('rejects a CRAWLFLEET_SESSION_REDIS_URL that is not a Redis URL', () => {
    const error = expectInputError(
      () => readEnvironment({ CRAWLFLEET_SESSION_REDIS_URL: 'https://sessions:6379' }),
      'invalid_redis_url',
    );
    expect(error.message).toContain('CRAWLFLEET_SESSION_REDIS_URL');
  });
});

describe('keyLayout', () => {
  const keys = keyLayout('cf');

  it('keeps the prefix', () => {
    expect(keys.prefix).toBe('cf');
  });

  it('gives BullMQ the prefix as a hash tag', () => {
    expect(keys.bullPrefix).toBe('{cf}');
  });

  it('puts the results stream under the hash tag: one shard is the fleet tag', () => {
    expect(keys.shards.map((shard) => shard.results)).toEqual(['{cf}:results']);
    expect(keys.shardOf('ik-0123abcd').bullPrefix).toBe('{cf}');
  });

  it('names the ledger entry of an idempotency key', () => {
    expect(keys.ledger('ik-0123abcd')).toBe('{cf}:ledger:ik-0123abcd');
  });

  it('names the BullMQ hash of a crawl job', () => {
    expect(keys.crawlJob('ik-0123abcd')).toBe(`{cf}:${CRAWL_QUEUE}:ik-0123abcd`);
    expect(keys.crawlJob('ik-0123abcd')).toBe('{cf}:crawl:ik-0123abcd');
  });

  it('keeps fleets with different prefixes apart', () => {
    const staging = keyLayout('staging');
    expect(staging.shards[0]?.results).toBe('{staging}:results');
    expect(staging.ledger('k')).not.toBe(keys.ledger('k'));
  });
});

describe('keyLayout with shards', () => {
  const keys = keyLayout('cf', 3);

  it('gives each shard its own tag, each in its third of the slots, the DLQ and fleet keys on the fleet tag', () => {
    const tags = keys.shards.map((shard) => shard.tag);
    expect(new Set(tags).size).toBe(3);
    keys.shards.forEach((shard, i) => {
      expect(shard.index).toBe(i);
      expect(shard.tag).toMatch(new RegExp(`^\\{cf:${i}(\\.\\d+)?\\}$`));
      const slot = keySlot(shard.tag.slice(1, -1));
      expect(slot).toBeGreaterThanOrEqual(Math.ceil((i * 16384) / 3));
      expect(slot).toBeLessThan(Math.ceil(((i + 1) * 16384) / 3));
      expect(shard.results).toBe(`${shard.tag}:results`);
      expect(shard.frontier).toBe(`${shard.tag}:frontier`);
    });
    expect(keys.bullPrefix).toBe('{cf}');
    expect(keys.sessionRegistry).toBe('{cf}:sessions');
  });

  it("puts a key's job, ledger mark and result on one shard, the same wherever it is computed", () => {
    const counts = [0, 0, 0];
    for (let i = 0; i < 3000; i++) {
      const key = `ik-${i.toString(16).padStart(40, '0')}`;
      const shard = keys.shardOf(key);
      expect(keyLayout('cf', 3).shardOf(key).tag).toBe(shard.tag);
      expect(keys.ledger(key)).toBe(`${shard.tag}:ledger:${key}`);
      expect(keys.crawlJob(key)).toBe(`${shard.tag}:crawl:${key}`);
      counts[shard.index] = (counts[shard.index] ?? 0) + 1;
    }
    // Spread evenly: each shard within 10% of a third.
    for (const count of counts) expect(Math.abs(count - 1000)).toBeLessThan(100);
  });

  it('keeps a host pace on one shard, and refuses a shard count out of range', () => {
    expect(keys.host('example.com')).toBe(`${keys.shardOf('example.com').tag}:host:example.com`);
    expect(() => keyLayout('cf', 0)).toThrow(/1 to 64/);
    expect(() => keyLayout('cf', 65)).toThrow(/1 to 64/);
  });
});

describe('isValidPrefix', () => {
  it.each(['cf', 'a', 'prod.eu-1_b', 'p'.repeat(64)])('accepts %j', (prefix) => {
    expect(isValidPrefix(prefix)).toBe(true);
  });

  it.each(['', 'a b', 'x:y', '{cf}', 'p'.repeat(65)])('rejects %j', (prefix) => {
    expect(isValidPrefix(prefix)).toBe(false);
  });
});
