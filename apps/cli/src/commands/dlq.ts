import { AuditLog } from '@crawlfleet/audit';
import { InputError, parseDuration } from '@crawlfleet/core';
import { checkCrawlName } from '@crawlfleet/crawls';
import { type DeadLetter, DeadLetterQueue, replayDeadLetters } from '@crawlfleet/dlq';
import { FAILURE_CLASSES, type FailureClass } from '@crawlfleet/failures';
import { Producer } from '@crawlfleet/producer';
import type { Command } from 'commander';
import { type GlobalOptions, openContext } from '../context.js';
import { plural, printJson, say, table } from '../output.js';

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
    .option('--json', 'print a JSON array of {id,url,class,reason,attempts,failedAt,tenant,crawl?}')
    .option('--class <class>', `only this failure class (${FAILURE_CLASSES.join(', ')})`)
    .option('--crawl <name>', "only this named crawl's pages")
    .option('--limit <n>', 'at most n entries')
    .action(async (options: { json?: boolean; class?: string; crawl?: string; limit?: string }, command: Command) => {
      const failureClass = parseClass(options.class);
      const crawl = options.crawl === undefined ? undefined : checkCrawlName(options.crawl);
      const limit = parseLimit(options.limit);
      const context = await openContext(command.optsWithGlobals<GlobalOptions>());
      const queue = new DeadLetterQueue(context.redis, context.keys);
      try {
        const entries = await queue.list({ failureClass, crawl, limit });
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

  dlq
    .command('replay')
    .description(
      'put dead letters back on their queue (crawl, or crawl-render for render jobs) with fresh attempts; entries leave the DLQ once enqueued',
    )
    .argument('[ids...]', 'entry ids (see dlq list)')
    .option('--all', 'replay every entry (with --class, every entry of that class)')
    .option('--class <class>', `with --all: only this failure class (${FAILURE_CLASSES.join(', ')})`)
    .option('--json', 'print {"replayed":[ids],"skipped":[{id,reason}]}')
    .action(async (ids: string[], options: { all?: boolean; class?: string; json?: boolean }, command: Command) => {
      const failureClass = parseClass(options.class);
      if (ids.length > 0 === Boolean(options.all))
        throw new InputError('invalid_usage', 'give entry ids or --all, not both and not neither');
      if (failureClass !== undefined && !options.all) throw new InputError('invalid_usage', '--class goes with --all');
      const context = await openContext(command.optsWithGlobals<GlobalOptions>());
      const queue = new DeadLetterQueue(context.redis, context.keys);
      const producer = new Producer(context.redis, context.keys, context.config);
      try {
        let letters: AsyncIterable<DeadLetter> | DeadLetter[];
        if (options.all) letters = queue.entries({ failureClass });
        else {
          const found = await Promise.all(ids.map(async (id) => ({ id, letter: await queue.show(id) })));
          const missing = found.filter((f) => f.letter === undefined).map((f) => f.id);
          if (missing.length > 0)
            throw new InputError('not_found', `no DLQ entry with id ${missing.join(', ')}; nothing was replayed`);
          letters = found.map((f) => f.letter as DeadLetter);
        }
        const audit = new AuditLog(context.redis, context.keys, context.config.retention.auditMaxLen);
        // Recorded before the jobs are back on the queue, so the trail reads in causal order.
        const report = await replayDeadLetters(queue, producer, letters, {
          beforeEnqueue: (ids) => audit.appendAll(ids.map((id) => ({ kind: 'replay', jobId: id, reason: 'cli' }))),
        });
        if (options.json) printJson(report);
        else {
          say(`replayed ${plural(report.replayed.length, 'job')}; ${report.skipped.length} left in the DLQ`);
          for (const { id, reason } of report.skipped) say(`  kept ${id}: ${reason}`);
        }
      } finally {
        await Promise.all([queue.close(), producer.close()]);
        await context.close();
      }
    });

  dlq
    .command('purge')
    .description('delete dead letters for good: all of them, or those older than a duration')
    .option('--older-than <duration>', 'only entries that failed longer ago than this (90s, 30m, 12h, 7d, 2w)')
    .option('--class <class>', `only this failure class (${FAILURE_CLASSES.join(', ')})`)
    .option('--json', 'print {"purged":N}')
    .action(async (options: { olderThan?: string; class?: string; json?: boolean }, command: Command) => {
      const failureClass = parseClass(options.class);
      const failedBefore =
        options.olderThan === undefined ? undefined : Date.now() - parseDuration(options.olderThan, '--older-than');
      const context = await openContext(command.optsWithGlobals<GlobalOptions>());
      const queue = new DeadLetterQueue(context.redis, context.keys);
      try {
        const ids: string[] = [];
        for await (const letter of queue.entries({ failureClass, failedBefore })) ids.push(letter.id);
        const purged = await queue.remove(ids);
        await new AuditLog(context.redis, context.keys, context.config.retention.auditMaxLen).append({
          kind: 'purge',
          reason: options.olderThan === undefined ? 'all' : `older than ${options.olderThan}`,
          detail: { purged, ...(failureClass === undefined ? {} : { class: failureClass }) },
        });
        if (options.json) printJson({ purged });
        else say(`purged ${plural(purged, 'dead letter')}`);
      } finally {
        await queue.close();
        await context.close();
      }
    });
}
