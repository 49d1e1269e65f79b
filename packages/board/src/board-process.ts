import { type CrawlfleetConfig, checkShardCount, connectRedis, keyLayout, redactRedisUrl } from '@crawlfleet/core';
import { createLogger } from '@crawlfleet/log';
import { boardAuthFromEnv } from './board-auth.js';
import { startBoard } from './board-server.js';
import { failurePolicyFromEnv } from './failure-policy.js';

export interface BoardProcessOptions {
  redisUrl: string;
  prefix: string;
  /** For replays from the board: job defaults, tenants, audit retention. */
  config: CrawlfleetConfig;
  port: number;
  host?: string | undefined;
  readOnly?: boolean | undefined;
  /** Where to say where the board is; stderr by default. */
  say?: (line: string) => void;
}

/**
 * Serves the board until SIGINT or SIGTERM. Refuses to start without credentials, or with a
 * malformed lock-out setting (exit 2). Logs JSON lines on stdout.
 */
export async function runBoardProcess(options: BoardProcessOptions): Promise<void> {
  const auth = boardAuthFromEnv();
  const failurePolicy = failurePolicyFromEnv();
  const say = options.say ?? ((line: string) => process.stderr.write(`${line}\n`));
  const connection = await connectRedis(options.redisUrl, { role: 'worker' });
  const keys = keyLayout(options.prefix, options.config.queue.shards);
  try {
    await checkShardCount(connection, keys);
  } catch (error) {
    connection.disconnect();
    throw error;
  }
  const board = await startBoard({
    connection,
    keys,
    config: options.config,
    auth,
    failurePolicy,
    logger: createLogger({ name: 'board' }),
    port: options.port,
    host: options.host,
    readOnly: options.readOnly,
  });
  say(
    `board on ${board.url} (${auth.kind === 'basic' ? `user ${auth.user}` : 'bearer token'}; Redis ${redactRedisUrl(options.redisUrl)}, prefix ${options.prefix}${options.readOnly ? ', read-only' : ''})`,
  );
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  await board.close();
  await connection.quit().catch(() => connection.disconnect());
}
