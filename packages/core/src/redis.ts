import { Redis } from 'ioredis';
import { RedisUnavailableError } from './errors.js';

/**
 * The Redis connection every package takes and `connectRedis` opens: the one seam between
 * crawlfleet's code and its Redis client. Today an ioredis client of one Redis; running on a Redis
 * Cluster widens this type (ioredis's `Cluster` shares the command interface) and `connectRedis`,
 * not every package.
 */
export type RedisClient = Redis;

/** A Redis URL with its password replaced, for messages and logs. */
export function redactRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable Redis URL)';
  }
}

export interface ConnectOptions {
  /**
   * `command`: a short-lived CLI command, which must fail fast with a clear error when Redis is
   * down. `worker`: a long-lived process, which must ride out Redis restarts by itself
   * (BullMQ needs `maxRetriesPerRequest: null` there).
   */
  role: 'command' | 'worker';
  connectTimeoutMs?: number;
}

/** Opens a Redis connection and waits until it is ready; throws `RedisUnavailableError`. */
export async function connectRedis(url: string, options: ConnectOptions): Promise<RedisClient> {
  const worker = options.role === 'worker';
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: options.connectTimeoutMs ?? 3_000,
    maxRetriesPerRequest: worker ? null : 2,
    enableReadyCheck: true,
    retryStrategy: worker ? (times) => Math.min(times * 200, 5_000) : (times) => (times > 2 ? null : times * 200),
  });
  // Errors surface through connect() and commands; the socket's own error says why best.
  let socketError: Error | undefined;
  redis.on('error', (error: Error) => {
    socketError = error;
  });
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    const reason = (socketError ?? (error as Error)).message;
    throw new RedisUnavailableError(`cannot reach Redis at ${redactRedisUrl(url)}: ${reason}`);
  }
  return redis;
}

/**
 * A connection for session state that never makes a job wait on it: commands fail at once while
 * it is down (the job then runs on an ephemeral session) and it reconnects in the background.
 * It does not wait to connect, so a worker starts even when the session Redis is down.
 */
export function openSessionRedis(url: string, commandTimeoutMs = 2_000): RedisClient {
  const redis = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: commandTimeoutMs,
    connectTimeout: 2_000,
    retryStrategy: (times) => Math.min(times * 200, 5_000),
    // No autopipelining: jobs rarely hydrate in the same tick, and the pipeline it builds for
    // every command cost a worker about 15% of its throughput in the fleet benchmark.
  });
  redis.on('error', () => {});
  return redis;
}

/** Resolves true once `redis` is ready, or false after `timeoutMs`; never throws. */
export function whenReady(redis: RedisClient, timeoutMs: number): Promise<boolean> {
  if (redis.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      resolve(false);
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve(true);
    };
    redis.once('ready', onReady);
  });
}

/**
 * Sends the commands a worker issues in one turn of the event loop in one socket write: the
 * connection's socket is corked at its first write and uncorked when the loop reaches its check
 * phase (`setImmediate`), after every I/O callback of the turn ran. At concurrency 100 many jobs
 * finish in the same turn; one write (and one reply read, and one read and write for Redis)
 * serves all their commands. The socket changes on every reconnect; each is patched once.
 */
export function coalesceWrites(redis: RedisClient): void {
  const patch = () => {
    const stream = redis.stream as (typeof redis.stream & { [COALESCED]?: true }) | undefined;
    if (stream === undefined || stream[COALESCED]) return;
    stream[COALESCED] = true;
    const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
    let corked = false;
    const flush = () => {
      corked = false;
      stream.uncork();
    };
    stream.write = ((...args: unknown[]) => {
      if (!corked) {
        corked = true;
        stream.cork();
        setImmediate(flush);
      }
      return write(...args);
    }) as typeof stream.write;
  };
  redis.on('connect', patch);
  patch();
}

const COALESCED = Symbol('crawlfleet.coalesced');
