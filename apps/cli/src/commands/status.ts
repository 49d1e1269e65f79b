import { CRAWL_QUEUE } from '@crawlfleet/core';
import { DeadLetterQueue } from '@crawlfleet/dlq';
import { ResultsStore } from '@crawlfleet/results';
import { Queue } from 'bullmq';
import type { Command } from 'commander';
import { type CommandContext, type GlobalOptions, openContext } from '../context.js';
import { printJson, table } from '../output.js';

export interface StatusCounts {
  waiting: number;
  active: number;
  delayed: number;
  completed: number;
  failed: number;
  dlq: number;
}

/** Job counts of the crawl queue, the DLQ size and the number of stored results. */
export async function readStatus(context: CommandContext): Promise<{ counts: StatusCounts; results: number }> {
  const queue = new Queue(CRAWL_QUEUE, { connection: context.redis, prefix: context.keys.bullPrefix });
  const dlq = new DeadLetterQueue(context.redis, context.keys);
  try {
    const [counts, dlqCount, results] = await Promise.all([
      queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'completed', 'failed'),
      dlq.count(),
      new ResultsStore(context.redis, context.keys, context.config.retention).count(),
    ]);
    return {
      counts: {
        waiting: (counts.waiting ?? 0) + (counts.prioritized ?? 0),
        active: counts.active ?? 0,
        delayed: counts.delayed ?? 0,
        completed: counts.completed ?? 0,
        failed: counts.failed ?? 0,
        dlq: dlqCount,
      },
      results,
    };
  } finally {
    await Promise.all([queue.close(), dlq.close()]);
  }
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('show job counts of the crawl queue, the DLQ and stored results')
    .option('--json', 'print {"counts":{"waiting","active","delayed","completed","failed","dlq"},"results":N}')
    .action(async (options: { json?: boolean }, command: Command) => {
      const context = await openContext(command.optsWithGlobals<GlobalOptions>());
      try {
        const status = await readStatus(context);
        if (options.json) {
          printJson(status);
          return;
        }
        const rows = Object.entries(status.counts).map(([state, count]) => [state, String(count)]);
        rows.push(['results stored', String(status.results)]);
        process.stdout.write(`${table(['state', 'jobs'], rows)}\n`);
        process.stdout.write(
          'completed and failed count jobs BullMQ still keeps (see retention in the config); results and the DLQ are the record.\n',
        );
      } finally {
        await context.close();
      }
    });
}
