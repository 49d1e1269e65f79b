import { parseDuration } from '@crawlfleet/core';
import { DeadLetterQueue } from '@crawlfleet/dlq';
import { Outbox } from '@crawlfleet/results';
import type { Command } from 'commander';
import { type GlobalOptions, openContext } from '../context.js';
import { printJson, say } from '../output.js';

export function registerPurge(program: Command): void {
  program
    .command('purge')
    .description('apply retention now: drop results, audit events and dead letters older than a duration')
    .requiredOption('--older-than <duration>', 'age to keep (90s, 30m, 12h, 7d, 2w)')
    .option('--json', 'print {"results","audit","dlq"} counts removed')
    .addHelpText(
      'after',
      `
The audit stream is also trimmed continuously by size (retention.auditMaxLen). The results outbox
is trimmed by its sinks: each result stays until every registered sink has acknowledged it
(crawlfleet sink list). This removes by age, on demand, and takes results out of the outbox whether
or not a sink has them yet. The idempotency ledger keeps its own TTL (retention.ledgerTtlSeconds),
so purged results are still known as done and are not crawled again.`,
    )
    .action(async (options: { olderThan: string; json?: boolean }, command: Command) => {
      const before = Date.now() - parseDuration(options.olderThan, '--older-than');
      const context = await openContext(command.optsWithGlobals<GlobalOptions>());
      const dlq = new DeadLetterQueue(context.redis, context.keys);
      try {
        // Stream entry ids start with their time in ms, so MINID trims by age.
        const [{ trimmed: results }, audit] = await Promise.all([
          new Outbox(context.redis, context.keys).purgeBefore(before),
          context.redis.xtrim(context.keys.audit, 'MINID', before),
        ]);
        const ids: string[] = [];
        for await (const letter of dlq.entries({ failedBefore: before })) ids.push(letter.id);
        const removed = { results, audit, dlq: await dlq.remove(ids) };
        if (options.json) printJson(removed);
        else
          say(
            `purged ${removed.results} results, ${removed.audit} audit events and ${removed.dlq} dead letters older than ${options.olderThan}`,
          );
      } finally {
        await dlq.close();
        await context.close();
      }
    });
}
