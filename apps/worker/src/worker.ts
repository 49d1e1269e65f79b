import { exitCodeOf, InputError, loadConfig, oneLine, readEnvironment } from '@crawlfleet/core';
import { progressEveryFromEnv, runWorkerProcess } from '@crawlfleet/crawler';
import { createLogger } from '@crawlfleet/log';
import { requireKeyRing } from '@crawlfleet/slates';

/** Reads a positive integer setting from the environment. */
function intFromEnv(name: string): number | undefined {
  const value = process.env[name];
  if (value === undefined || value === '') return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw new InputError('invalid_setting', `${name} must be a positive integer, got ${JSON.stringify(value)}`);
  return Number(value);
}

/**
 * The worker process, configured by environment variables only (one command on any machine):
 * REDIS_URL, CRAWLFLEET_SESSION_REDIS_URL, CRAWLFLEET_KEYS (else the local key file, when it
 * exists), CRAWLFLEET_PREFIX, CRAWLFLEET_CONFIG, CRAWLFLEET_CONCURRENCY, CRAWLFLEET_GRACE_MS,
 * CRAWLFLEET_METRICS_PORT, CRAWLFLEET_PROGRESS_MS.
 */
async function main(): Promise<void> {
  const logger = createLogger({ name: 'worker' });
  try {
    const env = readEnvironment();
    await runWorkerProcess({
      redisUrl: env.redisUrl,
      sessionRedisUrl: env.sessionRedisUrl,
      ring: requireKeyRing(),
      prefix: env.prefix,
      config: loadConfig(),
      logger,
      concurrency: intFromEnv('CRAWLFLEET_CONCURRENCY'),
      graceMs: intFromEnv('CRAWLFLEET_GRACE_MS'),
      metricsPort: intFromEnv('CRAWLFLEET_METRICS_PORT'),
      progressEveryMs: progressEveryFromEnv(process.env.CRAWLFLEET_PROGRESS_MS),
    });
  } catch (error) {
    process.stderr.write(`crawlfleet-worker: ${oneLine(error)}\n`);
    process.exitCode = exitCodeOf(error);
  }
}

export { main };
