import { type CrawlDefinition, FOLLOW_STRATEGIES, InputError, parseCrawlDefinition } from '@crawlfleet/core';
import { type CrawlHandler, loadHandler } from '@crawlfleet/crawler';
import { checkCrawlName } from '@crawlfleet/crawls';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { positiveInt } from './options.js';

/** The scope options of `submit --crawl` and `crawl`, as commander gives them. */
export interface CrawlOptions {
  crawl?: string;
  follow?: string;
  include?: string[];
  exclude?: string[];
  maxDepth?: number;
  maxPages?: number;
  sitemaps?: boolean;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function depth(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('must be 0 or a positive integer');
  return Number(value);
}

/** Adds a crawl's name and scope options to a command. */
export function withCrawlOptions(command: Command): Command {
  return command
    .option('--crawl <name>', 'start or extend the named crawl with these targets as seeds (see crawlfleet crawls)')
    .addOption(
      new Option('--follow <strategy>', 'which links of its HTML pages a crawl follows, from the page they are on')
        .choices(FOLLOW_STRATEGIES)
        .default(undefined, 'none'),
    )
    .option(
      '--include <glob>',
      'follow only links whose URL matches a glob like https://site/docs/** (repeatable)',
      collect,
    )
    .option('--exclude <glob>', 'never follow links whose URL matches (repeatable)', collect)
    .option('--max-depth <d>', 'the deepest page a crawl fetches; its seeds are depth 0', depth)
    .option('--max-pages <n>', 'the most pages a crawl admits, for the whole fleet', positiveInt)
    .option(
      '--sitemaps',
      "seed the crawl with the pages its seeds' sitemaps list (robots.txt Sitemap: lines, else /sitemap.xml; indexes and gzip read)",
    );
}

/**
 * The crawl a command's options name, or undefined without `--crawl`. `scoped`: scope options
 * were given (an existing crawl must then have that scope). Scope options without a crawl are
 * refused: they would do nothing.
 */
export function crawlOf(
  options: CrawlOptions,
  tenant: string,
  sessionId: string | undefined,
): { definition: CrawlDefinition; scoped: boolean } | undefined {
  const scoped =
    options.follow !== undefined ||
    options.include !== undefined ||
    options.exclude !== undefined ||
    options.maxDepth !== undefined ||
    options.maxPages !== undefined;
  if (options.crawl === undefined) {
    if (scoped || options.sitemaps === true)
      throw new InputError(
        'crawl_required',
        '--follow, --include, --exclude, --max-depth, --max-pages and --sitemaps need --crawl NAME',
      );
    return undefined;
  }
  const definition = parseCrawlDefinition({
    v: 1,
    name: checkCrawlName(options.crawl),
    tenant,
    ...(sessionId === undefined ? {} : { sessionId }),
    follow: options.follow ?? 'none',
    include: options.include ?? [],
    exclude: options.exclude ?? [],
    ...(options.maxDepth === undefined ? {} : { maxDepth: options.maxDepth }),
    ...(options.maxPages === undefined ? {} : { maxPages: options.maxPages }),
    createdAt: new Date().toISOString(),
  });
  return { definition, scoped };
}

/** The handler options of `worker` and `crawl`, as commander gives them. */
export interface HandlerOptions {
  handler?: string;
  handlerTimeoutMs: number;
}

/** Adds `--handler FILE` and its time limit to a command. */
export function withHandlerOptions(command: Command): Command {
  return command
    .option(
      '--handler <file>',
      "an ES module (or TypeScript) whose router named crawls' pages run through: export default a function, or { default, <label>: ... }",
    )
    .option(
      '--handler-timeout-ms <ms>',
      'how long a handler may run on one page before the job fails (handler_timeout)',
      positiveInt,
      30_000,
    );
}

/** Loads the handler the options name (one line and exit code 2 when it does not load); none without `--handler`. */
export async function handlerOf(
  options: HandlerOptions,
): Promise<{ handler: CrawlHandler; timeoutMs: number } | undefined> {
  if (options.handler === undefined) return undefined;
  return { handler: await loadHandler(options.handler), timeoutMs: options.handlerTimeoutMs };
}
