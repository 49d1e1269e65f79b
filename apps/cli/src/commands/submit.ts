import { DEFAULT_TENANT, type FetchJob, InputError, type JobCrawl } from '@crawlfleet/core';
import { CrawlStore, describeScope } from '@crawlfleet/crawls';
import { InvalidTargetsError, Producer, prepareJobs, type SubmitReport } from '@crawlfleet/producer';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { type CommandContext, connect, type GlobalOptions, loadSettings, type Settings } from '../context.js';
import { type CrawlOptions, crawlOf, withCrawlOptions } from '../crawl-options.js';
import { sitemapSeeds } from '../sitemap-seeds.js';

/** Pages the sitemaps of a crawl without --max-pages may seed at most. */
const SITEMAP_URLS_AT_MOST = 100_000;

import { readTargets } from '../input.js';
import { plural, printJson, say, sayBadTargets } from '../output.js';

export interface TargetOptions {
  file?: string;
  tenant: string;
  session?: string;
  key?: string;
  method?: string;
  force?: boolean;
  render?: boolean;
}

/** The target options `submit` and `crawl` share. */
export function withTargetOptions(command: Command): Command {
  return command
    .argument('[urls...]', 'URLs to fetch')
    .option(
      '-f, --file <file>',
      'read targets from a file (- for stdin): one URL, or one JSON object {"url","method","headers","body","key"}, per line',
    )
    .option('-t, --tenant <name>', 'tenant from the config file', DEFAULT_TENANT)
    .option('-s, --session <id>', 'a session the jobs share (cookies, auth)')
    .option(
      '-k, --key <key>',
      'idempotency key for a single target (derived from tenant, method, canonical URL and body by default)',
    )
    .option('-X, --method <method>', 'HTTP method for targets that do not name one (default GET)')
    .option('--force', 'enqueue again keys that already finished or are known to the queue')
    .option(
      '--render',
      "render the pages in a browser as the session (its cookies, storage, proxy and profile); they wait for browser workers (crawlfleet worker --browsers N), and a crawl's links are rendered too",
    );
}

/**
 * Reads and validates every target into jobs; nothing touches Redis yet. When targets are bad,
 * lists them (the error that follows counts them) and throws.
 */
export async function prepareTargets(
  settings: Settings,
  urls: string[],
  options: TargetOptions,
  crawl?: JobCrawl,
): Promise<FetchJob[]> {
  const targets = await readTargets({ urls, file: options.file, key: options.key, method: options.method });
  try {
    return prepareJobs(settings.config, targets, {
      tenant: options.tenant,
      sessionId: options.session,
      crawl,
      render: options.render,
    });
  } catch (error) {
    if (error instanceof InvalidTargetsError) sayBadTargets(error.problems);
    throw error;
  }
}

/** Enqueues prepared jobs in batches, with a progress bar for large inputs on a terminal. */
export async function enqueueJobs(context: CommandContext, jobs: FetchJob[], force?: boolean): Promise<SubmitReport> {
  const producer = new Producer(context.redis, context.keys, context.config);
  const bar =
    jobs.length >= 1_000 && process.stderr.isTTY
      ? new cliProgress.SingleBar(
          { stream: process.stderr, format: 'submitting {bar} {value}/{total} {percentage}%' },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
  bar?.start(jobs.length, 0);
  try {
    return await producer.submit(jobs, { force, onProgress: (done) => bar?.update(done) });
  } finally {
    bar?.stop();
    await producer.close();
  }
}

/**
 * The targets' jobs and the crawl they seed (`--crawl`, scope options): each job at depth 0 of
 * it, and with `--sitemaps` the pages the sites' sitemaps list. Nothing touches Redis yet.
 */
export async function prepareSeeds(
  settings: Settings,
  urls: string[],
  options: TargetOptions & CrawlOptions,
): Promise<{ crawl: ReturnType<typeof crawlOf>; jobs: FetchJob[] }> {
  const crawl = crawlOf(options, options.tenant, options.session);
  if (crawl === undefined) return { crawl, jobs: await prepareTargets(settings, urls, options) };
  const seeds = await prepareTargets(settings, urls, options, { name: crawl.definition.name, depth: 0 });
  return { crawl, jobs: await withSitemapSeeds(settings, crawl, seeds, options) };
}

/**
 * With `--sitemaps`, the seeds and the pages their sites' sitemaps list (`sitemapSeeds`), each key
 * once, all at depth 0; says what it read on stderr. Without it, the seeds.
 */
export async function withSitemapSeeds(
  settings: Settings,
  crawl: NonNullable<ReturnType<typeof crawlOf>>,
  jobs: FetchJob[],
  options: CrawlOptions & TargetOptions,
): Promise<FetchJob[]> {
  if (options.sitemaps !== true) return jobs;
  const { definition } = crawl;
  const found = await sitemapSeeds(
    settings.config,
    definition,
    jobs.map((job) => job.url),
    definition.maxPages ?? SITEMAP_URLS_AT_MOST,
  );
  for (const problem of found.problems.slice(0, 5)) say(`sitemaps: ${problem}`);
  if (found.problems.length > 5) say(`sitemaps: ... and ${found.problems.length - 5} more`);
  const more = prepareJobs(
    settings.config,
    found.urls.map((url) => ({ url })),
    {
      tenant: options.tenant,
      sessionId: options.session,
      crawl: { name: definition.name, depth: 0 },
      render: options.render,
    },
  );
  const keys = new Set(jobs.map((job) => job.idempotencyKey));
  const added = more.filter((job) => !keys.has(job.idempotencyKey) && keys.add(job.idempotencyKey));
  say(
    `read ${plural(found.files, 'sitemap file')}: ${plural(added.length, 'more page')} seed crawl ${definition.name}`,
  );
  return [...jobs, ...added];
}

/**
 * Starts the crawl the seeds belong to, or extends it (`CrawlStore.start`): its scope is stored
 * once, and the seeds count as discovered. Says what happened, unless `quiet`.
 */
export async function startCrawl(
  context: CommandContext,
  crawl: NonNullable<ReturnType<typeof crawlOf>>,
  jobs: readonly FetchJob[],
  quiet: boolean,
): Promise<void> {
  const store = new CrawlStore(context.redis, context.keys);
  const { name, tenant, sessionId } = crawl.definition;
  const standing = await store.definition(name);
  if (standing !== undefined && (standing.tenant !== tenant || standing.sessionId !== sessionId))
    throw new InputError(
      'crawl_scope_differs',
      `crawl ${name} belongs to tenant ${standing.tenant}${standing.sessionId === undefined ? '' : ` and session ${standing.sessionId}`}: name a new crawl, or give the same --tenant and --session`,
    );
  const started = await store.start(
    crawl.definition,
    jobs.map((job) => job.idempotencyKey),
    crawl.scoped,
  );
  if (!quiet) say(`${started.started ? 'started' : 'extended'} crawl ${name} (${describeScope(started.definition)})`);
}

export function registerSubmit(program: Command): void {
  withCrawlOptions(withTargetOptions(program.command('submit')))
    .description('enqueue fetch jobs on the crawl queue; known keys count as duplicates')
    .option('--json', 'print {"enqueued":N,"duplicates":M}')
    .addHelpText(
      'after',
      `
Examples:
  $ crawlfleet submit https://example.com/ https://example.com/about
  $ crawlfleet submit --file urls.txt --tenant shop --session account-1
  $ cat urls.txt | crawlfleet submit --file - --json
  $ crawlfleet submit --crawl docs --follow same-hostname --max-depth 3 https://example.com/docs/
  $ crawlfleet submit --crawl docs https://example.com/docs/more   # extends crawl docs, same scope`,
    )
    .action(async (urls: string[], options: TargetOptions & CrawlOptions & { json?: boolean }, command: Command) => {
      const settings = loadSettings(command.optsWithGlobals<GlobalOptions>());
      const { crawl, jobs } = await prepareSeeds(settings, urls, options);
      const context = await connect(settings);
      try {
        if (crawl !== undefined) await startCrawl(context, crawl, jobs, options.json === true);
        const report = await enqueueJobs(context, jobs, options.force);
        if (options.json) printJson({ enqueued: report.enqueued, duplicates: report.duplicates });
        else
          say(
            `enqueued ${plural(report.enqueued, 'job')}, ${plural(report.duplicates, 'duplicate')} skipped (tenant ${options.tenant})`,
          );
        if (report.unreplicated !== undefined)
          process.stderr.write(
            `crawlfleet: warning: no replica of ${plural(report.unreplicated, 'master')} confirmed the jobs within 2 s; a failover now could lose some (crawlfleet status shows what is queued)\n`,
          );
      } finally {
        await context.close();
      }
    });
}
