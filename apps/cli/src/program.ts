import { Command } from 'commander';
import { registerAudit } from './commands/audit.js';
import { registerBoard } from './commands/board.js';
import { registerCrawl } from './commands/crawl.js';
import { registerCrawls } from './commands/crawls.js';
import { registerDlq } from './commands/dlq.js';
import { registerKeys } from './commands/keys.js';
import { registerPurge } from './commands/purge.js';
import { registerResults } from './commands/results.js';
import { registerSessions } from './commands/sessions.js';
import { registerSink } from './commands/sink.js';
import { registerStatus } from './commands/status.js';
import { registerSubmit } from './commands/submit.js';
import { registerWorker } from './commands/worker.js';

export const VERSION = '0.1.0';

/** The `crawlfleet` command tree. Usage errors throw `CommanderError` (see main.ts). */
export function buildProgram(): Command {
  const program = new Command('crawlfleet')
    .description(
      'A distributed crawler fleet on BullMQ and Redis: submit URLs, run workers anywhere, take results out with sinks, inspect dead letters.',
    )
    .version(VERSION)
    .option('--config <file>', 'config file (default: CRAWLFLEET_CONFIG, else ./crawlfleet.config.json when present)')
    .showHelpAfterError('(run with --help for usage)')
    // Commander starts its usage errors with `error: `; every error of crawlfleet starts alike.
    .configureOutput({ outputError: (message, write) => write(message.replace(/^error: /, 'crawlfleet: ')) })
    .exitOverride()
    .addHelpText(
      'after',
      `
Environment:
  REDIS_URL                      Redis for queues, results and ledger (default redis://127.0.0.1:6379)
  CRAWLFLEET_SESSION_REDIS_URL   Redis for session state (default REDIS_URL)
  CRAWLFLEET_KEYS                session encryption keys, kid:base64key,... (crawlfleet keys generate)
  CRAWLFLEET_PREFIX              key prefix, so fleets can share a Redis (default cf)
  CRAWLFLEET_CONFIG              config file (tenants, fetch limits, retries, retention)
  CRAWLFLEET_LOG_LEVEL           worker log level (default info)

Exit codes: 0 success, 1 runtime failure (e.g. Redis unreachable), 2 bad usage or bad input.`,
    );
  registerSubmit(program);
  registerCrawl(program);
  registerWorker(program);
  registerStatus(program);
  registerDlq(program);
  registerResults(program);
  registerSink(program);
  registerCrawls(program);
  registerSessions(program);
  registerKeys(program);
  registerAudit(program);
  registerPurge(program);
  registerBoard(program);
  for (const command of program.commands) {
    command.exitOverride();
    for (const sub of command.commands) sub.exitOverride();
  }
  return program;
}
