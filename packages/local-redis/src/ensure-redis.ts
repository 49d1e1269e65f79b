import { InputError, redactRedisUrl } from '@crawlfleet/core';
import { findOnPath, type RedisServer, redisAnswers, startRedisServer } from './redis-server.js';

export interface EnsureRedisOptions {
  /** The URL to use: from `REDIS_URL`, or the default. */
  url: string;
  /** True when `REDIS_URL` was set: then it is used as given and nothing is started. */
  fromEnv: boolean;
  /** PATH to search for `redis-server`. */
  path?: string;
}

export interface EnsuredRedis {
  url: string;
  /** The server this process started, when it had to; stop it when done. */
  server?: RedisServer | undefined;
}

/**
 * For the one-machine quick path: use `REDIS_URL` when set, else a Redis that answers at the
 * default address, else start a private `redis-server` from PATH for this run.
 */
export async function ensureRedis(options: EnsureRedisOptions): Promise<EnsuredRedis> {
  if (options.fromEnv || (await redisAnswers(options.url, 1_000))) return { url: options.url };
  const binary = findOnPath('redis-server', options.path);
  if (binary === undefined) {
    throw new InputError(
      'redis_not_found',
      `no Redis: REDIS_URL is unset, nothing answers at ${redactRedisUrl(options.url)}, and redis-server is not on PATH; install Redis (e.g. apt-get install redis-server) or set REDIS_URL`,
    );
  }
  const server = await startRedisServer({ binary });
  return { url: server.url, server };
}
