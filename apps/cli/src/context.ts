import {
  type ConnectOptions,
  type CrawlfleetConfig,
  checkShardCount,
  connectRedis,
  type Environment,
  type KeyLayout,
  keyLayout,
  loadConfig,
  type RedisClient,
  readEnvironment,
} from '@crawlfleet/core';

/** Options every command accepts. */
export interface GlobalOptions {
  config?: string;
}

/** Settings and config: everything a command can check before it connects anywhere. */
export interface Settings {
  env: Environment;
  config: CrawlfleetConfig;
  keys: KeyLayout;
}

/** What a command needs to talk to the fleet: settings plus one Redis connection. */
export interface CommandContext extends Settings {
  redis: RedisClient;
  close(): Promise<void>;
}

export function loadSettings(globals: GlobalOptions): Settings {
  const env = readEnvironment();
  const config = loadConfig({ path: globals.config });
  return { env, config, keys: keyLayout(env.prefix, config.queue.shards) };
}

/** Connects to `redisUrl` (default: the environment's); throws `RedisUnavailableError`. */
export async function connect(
  settings: Settings,
  redisUrl?: string,
  role: ConnectOptions['role'] = 'command',
): Promise<CommandContext> {
  const redis = await connectRedis(redisUrl ?? settings.env.redisUrl, { role });
  // The fleet's Redis (not a separate session Redis): this config must spread jobs as the fleet does.
  if (redisUrl === undefined || redisUrl === settings.env.redisUrl) {
    try {
      await checkShardCount(redis, settings.keys);
    } catch (error) {
      redis.disconnect();
      throw error;
    }
  }
  return {
    ...settings,
    redis,
    close: async () => {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}

/**
 * Reads settings and config first (bad input fails before any connection), then connects. A
 * long-running command (`sink run`) connects as a worker does: it rides out a Redis restart or a
 * cluster failover instead of failing on it.
 */
export function openContext(globals: GlobalOptions, role: ConnectOptions['role'] = 'command'): Promise<CommandContext> {
  return connect(loadSettings(globals), undefined, role);
}

/** Like `openContext`, but connected to the session Redis (`CRAWLFLEET_SESSION_REDIS_URL`). */
export function openSessionContext(globals: GlobalOptions): Promise<CommandContext> {
  const settings = loadSettings(globals);
  return connect(settings, settings.env.sessionRedisUrl);
}
