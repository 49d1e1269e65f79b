import { InputError } from '@crawlfleet/core';
import { DeadLetterQueue } from '@crawlfleet/dlq';
import { FAILURE_CLASSES, type FailureClass } from '@crawlfleet/failures';
import type { Command } from 'commander';
import { type GlobalOptions, openContext } from '../context.js';
import { printJson, table } from '../output.js';

function parseClass(value: string | undefined): FailureClass | undefined {
  if (value === undefined) return undefined;
  if (!(FAILURE_CLASSES as readonly string[]).includes(value)) {
    throw new InputError(
      'invalid_class',
      `--class must be one of ${FAILURE_CLASSES.join(', ')}, got ${JSON.stringify(value)}`,
    );
  }
  return value as FailureClass;
}

function parseLimit(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw new InputError('invalid_limit', `--limit must be a positive integer, got ${JSON.stringify(value)}`);
  return Number(value);
}

export function registerDlq(program: Command): void {
  const dlq = program.command('dlq').description('inspect the dead-letter queue (crawl-dlq)');

  dlq
    .command('list')
    .description('list dead letters, newest first')
    .option('--json', 'print a JSON array of {id,url,class,reason,attempts,failedAt,tenant}')
    .option('--class <class>', `only this failure class (${FAILURE_CLASSES.join(', ')})`)
    .option('--limit <n>', 'at most n entries')
    .action(async (options: { json?: boolean; class?: string; limit?: string }, command: Command) => {
      const failureClass = parseClass(options.class);
      const limit = parseLimit(options.limit);
      const context = await openContext(command.optsWithGlobals<GlobalOptions>());
      const queue = new DeadLetterQueue(context.redis, context.keys);
      try {
        const entries = await queue.list({ failureClass, limit });
        if (options.json) {
          printJson(entries);
          return;
        }
        if (entries.length === 0) {
          process.stdout.write('the DLQ is empty\n');
          return;
        }
        const rows = entries.map((e) => [e.id, e.class, e.reason, String(e.attempts), e.failedAt, e.url ?? '(no url)']);
        process.stdout.write(`${table(['id', 'class', 'reason', 'attempts', 'failed at', 'url'], rows)}\n`);
      } finally {
        await queue.close();
        await context.close();
      }
    });

  dlq
    .command('show')
    .description('print one dead letter whole: the original job, class, reason, attempt history, last response')
    .argument('<id>', 'the entry id (the original job id)')
    .action(async (id: string, _options: unknown, command: Command) => {
      const context = await openContext(command.optsWithGlobals<GlobalOptions>());
      const queue = new DeadLetterQueue(context.redis, context.keys);
      try {
        const letter = await queue.show(id);
        if (letter === undefined)
          throw new InputError('not_found', `no DLQ entry with id ${JSON.stringify(id)} (see crawlfleet dlq list)`);
        process.stdout.write(`${JSON.stringify(letter, null, 2)}\n`);
      } finally {
        await queue.close();
        await context.close();
      }
    });
}
