import { describe, expect, it } from 'vitest';
import { isClusterUrl, parseClusterUrl, readEnvironment, redactRedisUrl } from '../src/index.js';
import { expectInputError } from './expect-input-error.js';

describe('Redis Cluster URLs', () => {
  it('names a cluster with redis+cluster:// or rediss+cluster://, and nothing else', () => {
    expect(isClusterUrl('redis+cluster://10.0.0.1:7000')).toBe(true);
    expect(isClusterUrl('rediss+cluster://a:7000,b:7001')).toBe(true);
    expect(isClusterUrl('redis://10.0.0.1:7000')).toBe(false);
    expect(isClusterUrl('rediss://10.0.0.1:7000')).toBe(false);
  });

  it('reads every node, credentials and TLS', () => {
    expect(parseClusterUrl('redis+cluster://127.0.0.1:7000,127.0.0.1:7001,[::1]:7002')).toEqual({
      nodes: [
        { host: '127.0.0.1', port: 7000 },
        { host: '127.0.0.1', port: 7001 },
        { host: '::1', port: 7002 },
      ],
      tls: false,
    });
    expect(parseClusterUrl('rediss+cluster://fleet:p%40ss@redis-0.internal:6379/')).toEqual({
      nodes: [{ host: 'redis-0.internal', port: 6379 }],
      username: 'fleet',
      password: 'p@ss',
      tls: true,
    });
    expect(parseClusterUrl('redis+cluster://:secret@h:1')).toMatchObject({ password: 'secret' });
  });

  it('refuses a node without a port, a bad port, a database number, with what is wrong', () => {
    expect(expectInputError(() => parseClusterUrl('redis+cluster://127.0.0.1'), 'invalid_redis_url').message).toMatch(
      /host:port/,
    );
    expect(expectInputError(() => parseClusterUrl('redis+cluster://h:1,h:99999'), 'invalid_redis_url').message).toMatch(
      /"h:99999"/,
    );
    expect(expectInputError(() => parseClusterUrl('redis+cluster://h:1/2'), 'invalid_redis_url').message).toMatch(
      /redis\+cluster:\/\/host:port/,
    );
  });

  it('is accepted from REDIS_URL and CRAWLFLEET_SESSION_REDIS_URL, and a malformed one is refused there', () => {
    const url = 'redis+cluster://10.0.0.1:7000,10.0.0.2:7000';
    expect(readEnvironment({ REDIS_URL: url })).toMatchObject({ redisUrl: url, sessionRedisUrl: url });
    expect(
      expectInputError(
        () => readEnvironment({ CRAWLFLEET_SESSION_REDIS_URL: 'redis+cluster://10.0.0.1' }),
        'invalid_redis_url',
      ).message,
    ).toMatch(/^CRAWLFLEET_SESSION_REDIS_URL: .*host:port/);
  });

  it('hides the password of a cluster URL in messages', () => {
    expect(redactRedisUrl('redis+cluster://fleet:hunter2@a:1,b:2')).toBe('redis+cluster://fleet:***@a:1,b:2');
    expect(redactRedisUrl('redis+cluster://a:1,b:2')).toBe('redis+cluster://a:1,b:2');
    expect(readEnvironmentMessage('ftp://user:hunter2@h:1')).not.toContain('hunter2');
  });
});

function readEnvironmentMessage(url: string): string {
  try {
    readEnvironment({ REDIS_URL: url });
    return '';
  } catch (error) {
    return (error as Error).message;
  }
}
