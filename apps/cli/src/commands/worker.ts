import { parseDuration, wholeNumberSetting } from '@crawlfleet/core';
import {
  DEFAULT_CONCURRENCY,
  DEFAULT_GRACE_MS,
  DEFAULT_PROGRESS_MS,
  progressEveryFromEnv,
  runWorkerProcess,
} from '@crawlfleet/crawler';
import { createLogger } from '@crawlfleet/log';
import { requireKeyRing } from '@crawlfleet/slates';
import { type Command, InvalidArgumentError } from 'commander';
import { type GlobalOptions, loadSettings } from '../context.js';
import { type HandlerOptions, handlerOf, withHandlerOptions } from '../crawl-options.js';
import { positiveInt } from '../options.js';

/** A positive integer from the environment (`CRAWLFLEET_CONCURRENCY`, `CRAWLFLEET_METRICS_PORT`). */
function intSetting(name: string): number | undefined {
  return wholeNumberSetting(name, process.env[name], { min: 1, must: 'a positive integer' });
}

/** `--progress-every`: a duration such as 30s or 5m, or 0 for no progress lines. */
function progressEvery(value: string): number {
  if (value === '0') return 0;
  try {
    return parseDuration(value, '--progress-every');
  } catch (error) {
    throw new InvalidArgumentError(error instanceof Error ? error.message : String(error));
  }
}

export function registerWorker(program: Command): void {
  withHandlerOptions(program.command('worker'))
    .description('run a worker: take jobs from the crawl queue until SIGTERM/SIGINT, then drain')
    .option(
      '-c, --concurrency <n>',
      `jobs processed at once (default ${DEFAULT_CONCURRENCY}, or CRAWLFLEET_CONCURRENCY)`,
      positiveInt,
    )
    .option(
      '--browsers <n>',
      'be a browser worker: take render jobs (--render) only, with at most n Chromium contexts at once (or CRAWLFLEET_BROWSERS); Chromium is /usr/bin/chromium or CRAWLFLEET_CHROMIUM',
      positiveInt,
    )
    .option(
      '--metrics-port <port>',
      'serve /metrics and /healthz on this port (or CRAWLFLEET_METRICS_PORT)',
      positiveInt,
    )
    .option(
      '--grace-ms <ms>',
      `how long a drain waits for active jobs (default ${DEFAULT_GRACE_MS}, or CRAWLFLEET_GRACE_MS)`,
      positiveInt,
    )
    .option(
      '--lock-duration-ms <ms>',
      "how long a job stays locked without renewal: a dead worker's jobs wait this long (default 30000)",
      positiveInt,
    )
    .option(
      '--stalled-interval-ms <ms>',
      'how often this worker looks for jobs of dead workers (default 30000)',
      positiveInt,
    )
    .option(
      '--progress-every <duration>',
      `log a progress line at info this often (30s, 5m; 0 for none; default ${DEFAULT_PROGRESS_MS / 1000}s, or CRAWLFLEET_PROGRESS_MS)`,
      progressEvery,
    )
    .addHelpText(
      'after',
      `
Run one per machine (or many); they share work through Redis. Logs are JSON lines on stdout.
Every worker of a fleet that runs named crawls with a handler loads the same handler module.
  $ REDIS_URL=redis://queue.internal:6379 crawlfleet worker --concurrency 32
  $ crawlfleet worker --handler ./handlers/shop.mjs
Render jobs (submit --render) wait for browser workers; run a few beside the HTTP ones:
  $ crawlfleet worker --browsers 4`,
    )
    .action(
      async (
        options: {
          concurrency?: number;
          browsers?: number;
          graceMs?: number;
          metricsPort?: number;
          lockDurationMs?: number;
          stalledIntervalMs?: number;
          progressEvery?: number;
        } & HandlerOptions,
        command: Command,
      ) => {
        const { env, config } = loadSettings(command.optsWithGlobals<GlobalOptions>());
        const ring = requireKeyRing();
        // A handler that does not load stops the worker before it takes a job.
        const handler = await handlerOf(options);
        await runWorkerProcess({
          redisUrl: env.redisUrl,
          sessionRedisUrl: env.sessionRedisUrl,
          ring,
          prefix: env.prefix,
          config,
          logger: createLogger({ name: 'worker' }),
          concurrency: options.concurrency ?? intSetting('CRAWLFLEET_CONCURRENCY'),
          graceMs: options.graceMs ?? intSetting('CRAWLFLEET_GRACE_MS'),
          lockDurationMs: options.lockDurationMs,
          stalledIntervalMs: options.stalledIntervalMs,
          progressEveryMs: options.progressEvery ?? progressEveryFromEnv(process.env.CRAWLFLEET_PROGRESS_MS),
          metricsPort: options.metricsPort ?? intSetting('CRAWLFLEET_METRICS_PORT'),
          handler,
          browsers: options.browsers ?? intSetting('CRAWLFLEET_BROWSERS'),
        });
      },
    );
}
