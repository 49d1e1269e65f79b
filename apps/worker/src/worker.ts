import { exitCodeOf, loadConfig, oneLine, readEnvironment, wholeNumberSetting } from '@crawlfleet/core';
import { progressEveryFromEnv, runWorkerProcess } from '@crawlfleet/crawler';
import { createLogger } from '@crawlfleet/log';
import { requireKeyRing } from '@crawlfleet/slates';

/** Reads a positive integer setting from the environment. */
function intFromEnv(name: string): number | undefined {
  return wholeNumberSetting(name, process.env[name], { min: 1, must: 'a positive integer' });
}

/**
 * The worker process, configured by environment variables only (one command on any machine):
 * REDIS_URL, CRAWLFLEET_SESSION_REDIS_URL, CRAWLFLEET_KEYS (else the local key file, when it
 * exists), CRAWLFLEET_PREFIX, CRAWLFLEET_CONFIG, CRAWLFLEET_CONCURRENCY, CRAWLFLEET_GRACE_MS,
 * CRAWLFLEET_METRICS_PORT, CRAWLFLEET_PROGRESS_MS, and CRAWLFLEET_BROWSERS (a browser worker with that
 * many Chromium contexts: render jobs only; Chromium is CRAWLFLEET_CHROMIUM or /usr/bin/chromium).
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
      browsers: intFromEnv('CRAWLFLEET_BROWSERS'),
    });
  } catch (error) {
    process.stderr.write(`crawlfleet-worker: ${oneLine(error)}\n`);
    process.exitCode = exitCodeOf(error);
  }
}

export { main };
