import { InputError } from '@crawlfleet/core';
import {
  type CrawlState,
  type CrawlStatus,
  CrawlStore,
  checkCrawlName,
  describeScope,
  pendingOf,
} from '@crawlfleet/crawls';
import type { Command } from 'commander';
import { type GlobalOptions, openContext } from '../context.js';
import { printJson, say, table } from '../output.js';

/** `45 s`, `12 min`, `3 h 20 min`. */
function formatSeconds(seconds: number): string {
  if (seconds < 90) return `${seconds} s`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 90) return `${minutes} min`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** A crawl's status as `crawls show --json` and `crawls list --json` print it; `inFlight` its running jobs. */
function view(status: CrawlStatus, inFlight: number) {
  const { definition, state, discovered, stored, deadLettered, records, cancelled, lastMinute } = status;
  const pending = pendingOf(status);
  // With a page limit the crawl's end is known: what is left of it at the last minute's pace.
  const left = definition.maxPages === undefined ? undefined : Math.max(0, definition.maxPages - stored - deadLettered);
  // (It may end sooner: when its scope holds fewer pages than the limit.)
  const etaSeconds =
    left === undefined || state !== 'running' || pending === 0 || lastMinute === 0
      ? null
      : Math.round((left / lastMinute) * 60);
  return {
    name: definition.name,
    tenant: definition.tenant,
    ...(definition.sessionId === undefined ? {} : { sessionId: definition.sessionId }),
    state,
    scope: {
      follow: definition.follow,
      include: definition.include,
      exclude: definition.exclude,
      maxDepth: definition.maxDepth ?? null,
      maxPages: definition.maxPages ?? null,
    },
    discovered,
    stored,
    deadLettered,
    records,
    cancelled,
    // Admitted and not yet stored or dead-lettered: queued (or waiting to retry), or running now.
    pending,
    queued: Math.max(0, pending - inFlight),
    inFlight: Math.min(pending, inFlight),
    /** Pages stored in the last minute, fleet-wide. */
    lastMinute,
    /** Seconds to the crawl's page limit at the last minute's pace; null without a limit or a pace. */
    etaSeconds,
    createdAt: definition.createdAt,
  };
}

export function registerCrawls(program: Command): void {
  const crawls = program
    .command('crawls')
    .description('named crawls (submit --crawl NAME): their scope and how far they got');

  crawls
    .command('list')
    .description('every crawl, oldest first, with its counts')
    .option('--json', 'print a JSON array')
    .action(async (options: { json?: boolean }, command: Command) => {
      const context = await openContext(command.optsWithGlobals<GlobalOptions>());
      try {
        const store = new CrawlStore(context.redis, context.keys);
        const found: Array<ReturnType<typeof view>> = [];
        for (const name of await store.names()) {
          const status = await store.status(name);
          if (status !== undefined) found.push(view(status, await store.inFlight(name)));
        }
        if (options.json) printJson(found);
        else if (found.length === 0)
          say('no crawls (start one with crawlfleet submit --crawl NAME --follow same-hostname URL)');
        else
          process.stdout.write(
            `${table(
              ['crawl', 'tenant', 'state', 'discovered', 'stored', 'dead', 'pending'],
              found.map((c) =>
                [c.name, c.tenant, c.state, c.discovered, c.stored, c.deadLettered, c.pending].map(String),
              ),
            )}\n`,
          );
      } finally {
        await context.close();
      }
    });

  const steer = (verb: 'pause' | 'resume' | 'cancel', to: CrawlState, description: string, done: string) =>
    crawls
      .command(verb)
      .description(description)
      .argument('<name>', 'the crawl')
      .action(async (name: string, _options: unknown, command: Command) => {
        checkCrawlName(name);
        const context = await openContext(command.optsWithGlobals<GlobalOptions>());
        try {
          const from = await new CrawlStore(context.redis, context.keys).steer(name, to);
          say(from === to ? `crawl ${name} was already ${to}` : `crawl ${name} ${done}`);
        } finally {
          await context.close();
        }
      });
  steer(
    'pause',
    'paused',
    "stop fetching a crawl's pages, fleet-wide within a second; its jobs wait in the queue, no attempt spent",
    'paused: workers stop fetching its pages within a second (crawlfleet crawls resume to go on)',
  );
  steer('resume', 'running', "fetch a paused crawl's pages again", 'resumed');
  steer(
    'cancel',
    'cancelled',
    'end a crawl for good: its queued jobs end unfetched, and its pages admit no more links',
    'cancelled: its queued jobs end without being fetched',
  );

  crawls
    .command('show')
    .description('a crawl: its scope, state and counts (discovered, stored, dead-lettered, pending)')
    .argument('<name>', 'the crawl')
    .option('--json', 'print JSON')
    .action(async (name: string, options: { json?: boolean }, command: Command) => {
      checkCrawlName(name);
      const context = await openContext(command.optsWithGlobals<GlobalOptions>());
      try {
        const store = new CrawlStore(context.redis, context.keys);
        const status = await store.status(name);
        if (status === undefined)
          throw new InputError('unknown_crawl', `no crawl named ${name} (see crawlfleet crawls list)`);
        const shown = view(status, await store.inFlight(name));
        if (options.json) printJson(shown);
        else
          process.stdout.write(
            [
              `crawl ${shown.name} (tenant ${shown.tenant}${shown.sessionId === undefined ? '' : `, session ${shown.sessionId}`}): ${shown.state}`,
              `  scope: ${describeScope(status.definition)}`,
              `  discovered ${shown.discovered}, stored ${shown.stored}, dead-lettered ${shown.deadLettered}, records ${shown.records}`,
              `  pending ${shown.pending}: ${shown.queued} queued, ${shown.inFlight} in flight`,
              `  last minute: ${shown.lastMinute} pages stored${shown.etaSeconds === null ? '' : `; at that pace it reaches its ${status.definition.maxPages} pages in ${formatSeconds(shown.etaSeconds)} (sooner if its scope holds fewer)`}`,
              `  started ${shown.createdAt}`,
              '',
            ].join('\n'),
          );
      } finally {
        await context.close();
      }
    });
}
