import { createHash } from 'node:crypto';
import { BodyReader } from '@crawlfleet/bodies';
import { InputError } from '@crawlfleet/core';
import { checkCrawlName } from '@crawlfleet/crawls';
import { checkSinkName, Outbox } from '@crawlfleet/results';
import { OutboxConsumer, type OutboxEntry, openTarget, type SinkProgress, sinkKind } from '@crawlfleet/sinks';
import type { Command } from 'commander';
import { type GlobalOptions, openContext } from '../context.js';
import { positiveInt } from '../options.js';
import { ProgressLine, plural, printJson, say, table } from '../output.js';

interface RunOptions {
  to: string;
  name?: string;
  once?: boolean;
  batch: number;
  crawl?: string;
}

/**
 * A sink's default name, the same for the same `--to` (so running the same command again resumes
 * where it stopped): its kind and a short hash of the URI without its password.
 */
function defaultName(uri: string): string {
  const withoutPassword = uri.replace(/(\/\/[^:/@]+:)[^@/]*@/, '$1@');
  return `${sinkKind(uri)}-${createHash('sha256').update(withoutPassword).digest('hex').slice(0, 8)}`;
}

function progressText(name: string, progress: SinkProgress, startedMs: number): string {
  const seconds = Math.max(0.001, (Date.now() - startedMs) / 1000);
  const rate = Math.round(progress.written / seconds);
  const claimed = progress.claimed > 0 ? `, ${progress.claimed} taken over from dead consumers` : '';
  return `sink ${name}: ${plural(progress.written, 'result')} written (${rate}/s)${claimed}; the outbox holds ${progress.outbox.entries}`;
}

async function runSink(options: RunOptions, globals: GlobalOptions): Promise<void> {
  const kind = sinkKind(options.to);
  const name = checkSinkName(options.name ?? defaultName(options.to));
  const crawl = options.crawl === undefined ? undefined : checkCrawlName(options.crawl);
  const context = await openContext(globals, 'worker');
  const bodies = new BodyReader();
  const line = new ProgressLine();
  const started = Date.now();
  try {
    const target = await openTarget(options.to, { sinkName: name });
    const consumer = new OutboxConsumer({
      redis: context.redis,
      keys: context.keys,
      name,
      target,
      bodies,
      batchSize: options.batch,
      once: options.once,
      // A sink of one crawl writes its pages and records and passes over (acknowledges) the rest.
      ...(crawl === undefined
        ? {}
        : {
            select: async (entries: readonly OutboxEntry[]) =>
              entries.map((entry) => ('record' in entry ? entry.record.crawl : entry.result.crawl) === crawl),
          }),
      onBatch: (progress) => line.update(progressText(name, progress, started)),
      onRetry: (error, attempt, delayMs) =>
        say(
          `sink ${name}: could not write a batch to ${target.description} (try ${attempt}: ${error.message}); again in ${delayMs} ms`,
        ),
    });
    say(
      `sink ${name} (${kind}) reads the outbox into ${target.description}${options.once ? ' until it is drained' : '; Ctrl-C stops after the batch in hand'}`,
    );
    const stop = () => consumer.stop();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      const progress = await consumer.run();
      line.done();
      say(progressText(name, progress, started));
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      await target.close();
    }
  } finally {
    await bodies.close();
    await context.close();
  }
}

export function registerSink(program: Command): void {
  const sink = program
    .command('sink')
    .description(
      'take results out of the outbox into JSON Lines, WARC, PostgreSQL or S3 (each sink acknowledges what it stored)',
    );
  sink
    .command('run')
    .description('run a sink: write the outbox to --to, acknowledging each batch once it is durable')
    .requiredOption(
      '--to <uri>',
      'jsonl:DIR[?gzip=true], warc:DIR, postgres://user@host:port/db[?table=NAME] or s3://bucket/prefix',
    )
    .option(
      '--name <name>',
      'the sink (its consumer group); run the same name again to resume (default: kind and a hash of --to)',
    )
    .option('--once', 'drain what the outbox holds for this sink, then exit')
    .option('--batch <n>', 'results per batch (one write, one acknowledgement)', positiveInt, 500)
    .option('--crawl <name>', "write only this named crawl's pages and records; the sink passes over the rest for good")
    .addHelpText(
      'after',
      `
A sink registers itself on first run and from then on the outbox keeps every result until it has
acknowledged it; results are trimmed from Redis only below what every registered sink has.
Several processes of one sink (same --name) share its work. A sink killed mid-batch loses nothing:
its entries are taken over at its next start (same host) or by another process of the sink once
its heartbeat lapses (15 s). PostgreSQL gets each result exactly once (keyed by idempotency_key);
files and S3 objects may repeat a batch written just before a crash, and every line or record
carries its idempotency key. S3 takes the AWS_* variables (AWS_ENDPOINT_URL for a non-AWS store).
  $ crawlfleet sink run --to postgres://postgres@127.0.0.1:5432/crawl?table=pages
  $ crawlfleet sink run --to jsonl:/data/results?gzip=true --once
  $ crawlfleet sink run --to warc:/data/warc --name archive`,
    )
    .action(async (options: RunOptions, command: Command) => {
      await runSink(options, command.optsWithGlobals<GlobalOptions>());
    });
  sink
    .command('add')
    .description('register a sink without running it: from now on the outbox keeps every result until it has taken it')
    .requiredOption('--to <uri>', "the sink's target, as sink run takes it (it names the sink by default)")
    .option('--name <name>', 'the sink (default: kind and a hash of --to, as sink run names it)')
    .addHelpText(
      'after',
      `
Register sinks before a crawl when each must get every result: a sink that starts later gets what
the outbox still holds, and the outbox gives up what every registered sink has taken.
  $ crawlfleet sink add --to warc:/data/warc --name archive`,
    )
    .action(async (options: { to: string; name?: string }, command: Command) => {
      sinkKind(options.to);
      const name = checkSinkName(options.name ?? defaultName(options.to));
      const context = await openContext(command.optsWithGlobals<GlobalOptions>());
      try {
        const created = await new Outbox(context.redis, context.keys).register(name);
        say(
          created
            ? `registered sink ${name}: the outbox keeps every result until it has taken it (crawlfleet sink run --to ${options.to}${options.name === undefined ? '' : ` --name ${name}`})`
            : `sink ${name} is already registered`,
        );
      } finally {
        await context.close();
      }
    });
  sink
    .command('list')
    .description('the registered sinks: what each has not read or not acknowledged yet')
    .option('--json', 'print [{"name","pending","lag","consumers","lastDeliveredId"}]')
    .action(async (options: { json?: boolean }, command: Command) => {
      const context = await openContext(command.optsWithGlobals<GlobalOptions>());
      try {
        const sinks = await new Outbox(context.redis, context.keys).sinks();
        if (options.json) printJson(sinks);
        else if (sinks.length === 0)
          say('no sinks registered: results stay in the outbox (crawlfleet sink run --to URI)');
        else
          process.stdout.write(
            `${table(
              ['sink', 'unread', 'pending', 'consumers'],
              sinks.map((s) => [s.name, String(s.lag ?? '?'), String(s.pending), String(s.consumers)]),
            )}\n`,
          );
      } finally {
        await context.close();
      }
    });
  sink
    .command('remove')
    .description('forget a sink: the outbox stops keeping results for it (what it has not taken is given up)')
    .argument('<name>', 'the sink to remove')
    .action(async (name: string, _options: unknown, command: Command) => {
      checkSinkName(name);
      const context = await openContext(command.optsWithGlobals<GlobalOptions>());
      try {
        if (!(await new Outbox(context.redis, context.keys).remove(name)))
          throw new InputError('unknown_sink', `no sink named ${JSON.stringify(name)} (crawlfleet sink list)`);
        say(`removed sink ${name}`);
      } finally {
        await context.close();
      }
    });
}
