import type { Command } from 'commander';
import { type GlobalOptions, loadSettings } from '../context.js';
import { positiveInt } from '../options.js';

export function registerBoard(program: Command): void {
  program
    .command('board')
    .description('serve Bull Board for the crawl and crawl-dlq queues, behind authentication')
    .option('-p, --port <port>', 'port', positiveInt, 3300)
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--read-only', 'look only: no retry, replay, remove or other action on either queue')
    .addHelpText(
      'after',
      `
Credentials are required: CRAWLFLEET_BOARD_USER and CRAWLFLEET_BOARD_PASSWORD (HTTP Basic),
or CRAWLFLEET_BOARD_TOKEN (Authorization: Bearer). Retry on a crawl-dlq entry (or on a failed
crawl job that has one) replays it exactly as crawlfleet dlq replay does: the job goes back on
crawl with fresh attempts and the entry leaves the DLQ once it is enqueued.
  $ CRAWLFLEET_BOARD_USER=ops CRAWLFLEET_BOARD_PASSWORD=... crawlfleet board --port 3300`,
    )
    .action(async (options: { port: number; host: string; readOnly?: boolean }, command: Command) => {
      const { env, config } = loadSettings(command.optsWithGlobals<GlobalOptions>());
      // Loaded here, not at start-up: Express and Bull Board have no business in a worker's memory.
      const { runBoardProcess } = await import('@crawlfleet/board');
      await runBoardProcess({
        redisUrl: env.redisUrl,
        prefix: env.prefix,
        config,
        port: options.port,
        host: options.host,
        readOnly: options.readOnly,
      });
    });
}
