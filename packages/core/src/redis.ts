import { Cluster, Redis } from 'ioredis';
import { InputError, RedisUnavailableError } from './errors.js';

/**
 * The Redis connection every package takes and `connectRedis` opens: the one seam between
 * crawlfleet's code and its Redis client. An ioredis client of one Redis, or of a Redis Cluster
 * (`redis+cluster://`), which shares the command interface; what differs on a cluster (pipelines
 * that span nodes, scanning every master, the socket of each node) goes through the helpers here
 * and in `slot-groups.ts`, not through each package.
 */
export type RedisClient = Redis | Cluster;

/** Whether `redis` is a Redis Cluster client. */
export function isCluster(redis: RedisClient): redis is Cluster {
  return redis instanceof Cluster;
}

/** The clients of the masters that hold the data: each master's, on a cluster; the one Redis's, else. */
export function mastersOf(redis: RedisClient): Redis[] {
  return isCluster(redis) ? redis.nodes('master') : [redis];
}

/** Whether a URL names a Redis Cluster: `redis+cluster://host:port[,host:port...]` (or `rediss+cluster://`). */
export function isClusterUrl(url: string): boolean {
  return /^rediss?\+cluster:\/\//i.test(url.trim());
}

export interface ClusterUrl {
  nodes: Array<{ host: string; port: number }>;
  username?: string;
  password?: string;
  tls: boolean;
}

/**
 * Reads a cluster URL: `redis+cluster://[user:password@]host:port[,host:port...]`. Any node of the
 * cluster is enough to find the others; several ride out one being down at start. Throws
 * `InputError` for a URL that is not one, with what is wrong.
 */
export function parseClusterUrl(url: string): ClusterUrl {
  const match = /^(rediss?)\+cluster:\/\/(?:([^@/]*)@)?([^/?#]+)\/?$/i.exec(url.trim());
  if (match === null) {
    throw new InputError(
      'invalid_redis_url',
      `a cluster URL is redis+cluster://host:port[,host:port...], got ${redactRedisUrl(url)}`,
    );
  }
  const [, scheme = 'redis', credentials, hosts = ''] = match;
  const nodes = hosts.split(',').map((entry) => {
    const node = /^(\[[0-9a-f:]+\]|[^:[\]]+):(\d{1,5})$/i.exec(entry.trim());
    const port = Number(node?.[2]);
    if (node === null || port < 1 || port > 65_535) {
      throw new InputError(
        'invalid_redis_url',
        `a cluster node is host:port, got ${JSON.stringify(entry)} in ${redactRedisUrl(url)}`,
      );
    }
    return { host: (node[1] ?? '').replace(/^\[|\]$/g, ''), port };
  });
  const parsed: ClusterUrl = { nodes, tls: scheme.toLowerCase() === 'rediss' };
  if (credentials !== undefined && credentials !== '') {
    const colon = credentials.indexOf(':');
    const user = decodeURIComponent(colon === -1 ? credentials : credentials.slice(0, colon));
    if (user !== '') parsed.username = user;
    if (colon !== -1) parsed.password = decodeURIComponent(credentials.slice(colon + 1));
  }
  return parsed;
}

/** A cluster client with the options of one Redis connection applied to each node's. */
function openCluster(url: string, options: ClusterOptions, lazyConnect: boolean): Cluster {
  const { nodes, username, password, tls } = parseClusterUrl(url);
  return new Cluster(nodes, {
    lazyConnect,
    enableReadyCheck: true,
    enableOfflineQueue: options.enableOfflineQueue ?? true,
    clusterRetryStrategy: options.retryStrategy,
    // After a master dies, its replica is promoted within the cluster's node timeout; commands
    // that got a connection error wait a moment and ask again instead of failing at once.
    retryDelayOnFailover: 200,
    // A long-lived process waits out a failover (the cluster's node timeout, then the promotion);
    // a command fails after a few seconds with what went wrong.
    maxRedirections: options.maxRetriesPerRequest === null ? 100 : 16,
    retryDelayOnClusterDown: 300,
    retryDelayOnTryAgain: 100,
    slotsRefreshTimeout: 2_000,
    redisOptions: {
      connectTimeout: options.connectTimeoutMs,
      maxRetriesPerRequest: options.maxRetriesPerRequest,
      ...(options.commandTimeoutMs === undefined ? {} : { commandTimeout: options.commandTimeoutMs }),
      ...(username === undefined ? {} : { username }),
      ...(password === undefined ? {} : { password }),
      ...(tls ? { tls: {} } : {}),
    },
  });
}

interface ClusterOptions {
  connectTimeoutMs: number;
  maxRetriesPerRequest: number | null;
  retryStrategy: (times: number) => number | null;
  commandTimeoutMs?: number;
  enableOfflineQueue?: boolean;
}

/** A Redis URL with its password replaced, for messages and logs. */
export function redactRedisUrl(url: string): string {
  // A cluster URL lists several host:port pairs, which URL cannot parse.
  if (isClusterUrl(url)) return url.trim().replace(/(\/\/[^:@/]*:)[^@/]*@/, '$1***@');
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
  const connectTimeout = options.connectTimeoutMs ?? 3_000;
  const maxRetriesPerRequest = worker ? null : 2;
  const retryStrategy = worker
    ? (times: number) => Math.min(times * 200, 5_000)
    : (times: number) => (times > 2 ? null : times * 200);
  const redis: RedisClient = isClusterUrl(url)
    ? openCluster(url, { connectTimeoutMs: connectTimeout, maxRetriesPerRequest, retryStrategy }, true)
    : new Redis(url, {
        lazyConnect: true,
        connectTimeout,
        maxRetriesPerRequest,
        enableReadyCheck: true,
        retryStrategy,
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
  const retryStrategy = (times: number) => Math.min(times * 200, 5_000);
  const redis: RedisClient = isClusterUrl(url)
    ? openCluster(
        url,
        {
          connectTimeoutMs: 2_000,
          maxRetriesPerRequest: 0,
          retryStrategy,
          commandTimeoutMs,
          enableOfflineQueue: false,
        },
        false,
      )
    : new Redis(url, {
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        commandTimeout: commandTimeoutMs,
        connectTimeout: 2_000,
        retryStrategy,
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
  if (isCluster(redis)) {
    // Each node has its own socket: the commands of a turn go out in one write per node.
    for (const node of redis.nodes('all')) coalesceWrites(node);
    redis.on('+node', (node: Redis) => coalesceWrites(node));
    return;
  }
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
