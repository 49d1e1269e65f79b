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

  it('puts the results stream under the hash tag', () => {
    expect(keys.results).toBe('{cf}:results');
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
    expect(staging.results).toBe('{staging}:results');
    expect(staging.ledger('k')).not.toBe(keys.ledger('k'));
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
