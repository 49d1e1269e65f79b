import { createWriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';
import { BodyReader } from '@crawlfleet/bodies';
import { InputError, parseDuration } from '@crawlfleet/core';
import { checkCrawlName } from '@crawlfleet/crawls';
import { ResultsStore } from '@crawlfleet/results';
import { resolveEntry } from '@crawlfleet/sinks';
import type { Command } from 'commander';
import { type GlobalOptions, openContext } from '../context.js';
import { plural, say, writeLine } from '../output.js';

/** Which results an export writes. */
interface ExportFilter {
  /** From this time on (ms since the epoch), or all. */
  sinceMs?: number | undefined;
  /** Only this tenant's, or all. */
  tenant?: string | undefined;
  /** Only this named crawl's pages and records, or all. */
  crawl?: string | undefined;
}

/** Streams the stored results the filter lets through as JSON lines to `out` (a file path) or stdout. */
async function exportResults(
  store: ResultsStore,
  filter: ExportFilter,
  out?: string,
): Promise<{ results: number; records: number }> {
  const stream = out === undefined ? process.stdout : createWriteStream(out, { flags: 'w' });
  if (out !== undefined) {
    await new Promise<void>((resolve, reject) => {
      stream.once('open', () => resolve());
      stream.once('error', (error) => reject(new InputError('invalid_out', `--out ${out}: ${error.message}`)));
    });
  }
  const count = { results: 0, records: 0 };
  // A body the worker put in the body store is read back, so every line is whole.
  const bodies = new BodyReader();
  try {
    for await (const entry of store.entries({ sinceMs: filter.sinceMs, records: true })) {
      const item = 'record' in entry ? entry.record : entry.result;
      if (filter.tenant !== undefined && item.tenant !== filter.tenant) continue;
      if (filter.crawl !== undefined && item.crawl !== filter.crawl) continue;
      const resolved =
        'record' in entry || entry.result.bodyRef === undefined
          ? item
          : (await resolveEntry(entry.entryId, entry.result, bodies)).result;
      await writeLine(stream, JSON.stringify(resolved));
      if ('record' in entry) count.records++;
      else count.results++;
    }
  } finally {
    await bodies.close();
  }
  if (out !== undefined) {
    stream.end();
    await finished(stream);
  }
  return count;
}

/**
 * `--since`, checked before anything connects: a duration back from now (`90s`, `30m`, `12h`,
 * `7d`, `2w`; now is the Redis server's clock, which dates the entries), or a date and time
 * (ISO 8601, with a zone or `Z`).
 */
function parseSince(text: string): { backMs: number } | { atMs: number } {
  const trimmed = text.trim();
  if (/^\d+[smhdw]$/.test(trimmed)) return { backMs: parseDuration(trimmed, '--since') };
  const atMs = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2}))?$/.test(trimmed)
    ? Date.parse(trimmed)
    : Number.NaN;
  if (Number.isNaN(atMs))
    throw new InputError(
      'invalid_since',
      `--since must be a duration (90s, 30m, 12h, 7d, 2w) or a date and time like 2026-11-30T08:00:00Z, got ${JSON.stringify(text)}`,
    );
  return { atMs };
}

export function registerResults(program: Command): void {
  const results = program.command('results').description('read stored results');
  results
    .command('export')
    .description(
      'stream the results the outbox holds as JSON lines (url, finalUrl, status, headers, body, bodyBytes, ...), and the records crawls\' handlers pushed ("kind":"record"), oldest first; what a sink took is in that sink',
    )
    .option('--format <format>', 'output format (jsonl)', 'jsonl')
    .option('-o, --out <file>', 'write to a file instead of stdout')
    .option(
      '--since <when>',
      'only results stored since then: a duration back from now (30m, 12h, 7d) or a date (2026-11-30T08:00:00Z)',
    )
    .option('--tenant <name>', "only this tenant's results")
    .option('--crawl <name>', "only this named crawl's pages and records")
    .action(
      async (
        options: { format: string; out?: string; since?: string; tenant?: string; crawl?: string },
        command: Command,
      ) => {
        if (options.format !== 'jsonl')
          throw new InputError('invalid_format', `--format must be jsonl, got ${JSON.stringify(options.format)}`);
        if (options.tenant !== undefined && options.tenant.trim() === '')
          throw new InputError('invalid_tenant', '--tenant needs a tenant name');
        const since = options.since === undefined ? undefined : parseSince(options.since);
        const context = await openContext(command.optsWithGlobals<GlobalOptions>());
        try {
          const store = new ResultsStore(context.redis, context.keys, context.config.retention);
          const filter = {
            sinceMs:
              since === undefined ? undefined : 'atMs' in since ? since.atMs : (await store.serverNow()) - since.backMs,
            tenant: options.tenant,
            crawl: options.crawl === undefined ? undefined : checkCrawlName(options.crawl),
          };
          const count = await exportResults(store, filter, options.out);
          if (options.out !== undefined)
            say(
              `exported ${plural(count.results, 'result')}${count.records > 0 ? ` and ${plural(count.records, 'record')}` : ''} to ${options.out}`,
            );
        } finally {
          await context.close();
        }
      },
    );
}
