#!/usr/bin/env node
/**
 * The fleet matrix's third side: Crawlee's HttpCrawler fetching the pages the other two sides
 * fetch, with the sessions a Crawlee user turns on for a site that sets cookies (a session pool
 * whose sessions keep their cookies). Run as its own process by `crawlee-side.ts`, so its RSS
 * and CPU are its own.
 *
 * Settings, and why:
 * - `useSessionPool` with `maxPoolSize` sessions and `persistCookiesPerSession`: each page goes
 *   out with its session's cookies and its Set-Cookies land in that session's jar, as
 *   crawlfleet's sessions do.
 * - Every page counts as a success: no status code marks a session blocked
 *   (`blockedStatusCodes: []`, `retryOnBlocked` off), no retries, and a session is never
 *   retired for its use count (Crawlee's default retires one after 50 pages and makes a new one,
 *   which would measure more sessions than the other sides use).
 * - Min and max concurrency both BENCH_CONCURRENCY, so the autoscaled pool neither ramps up nor
 *   backs off on its own load readings.
 * - Storage in memory only (`MemoryStorage` with `persistStorage: false`): nothing is written
 *   to disk. Each crawl has its own storage and session pool, so the measured pages go to
 *   sessions nobody used before, as the crawlfleet side's do.
 * - Crawlee's own log at WARNING: its periodic statistics are formatted for nobody.
 *
 * Environment: BENCH_PAGES (a JSON file `{ "warmup": [url...], "measured": [url...] }`),
 * BENCH_CONCURRENCY, BENCH_SESSIONS. Crawls the warm-up pages (so the measured crawl runs on
 * code the JIT compiled and sockets already open), then the measured ones, and prints one line
 * `crawlee-result {json}` on stdout: pages, pagesPerSecond (from the first request's start to
 * the last handler's end), failed, cpuMsPerPage (this process, over the measured crawl) and
 * rssMb (its peak).
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Configuration, HttpCrawler, LogLevel, log } from '@crawlee/http';
import { MemoryStorage } from '@crawlee/memory-storage';

function setting(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') throw new Error(`crawlee-worker: ${name} is not set`);
  return value;
}

const pages = JSON.parse(readFileSync(setting('BENCH_PAGES'), 'utf8')) as { warmup: string[]; measured: string[] };
const concurrency = Number(setting('BENCH_CONCURRENCY'));
const sessions = Number(setting('BENCH_SESSIONS'));

log.setLevel(LogLevel.WARNING);

interface Crawl {
  pages: number;
  failed: number;
  /** From the first request's start to the last handler's end. */
  ms: number;
}

async function crawl(urls: readonly string[]): Promise<Crawl> {
  const config = new Configuration({
    storageClient: new MemoryStorage({ persistStorage: false, writeMetadata: false }),
    persistStorage: false,
    logLevel: LogLevel.WARNING,
  });
  let first = Number.POSITIVE_INFINITY;
  let last = 0;
  let handled = 0;
  let failed = 0;
  const crawler = new HttpCrawler(
    {
      minConcurrency: concurrency,
      maxConcurrency: concurrency,
      maxRequestRetries: 0,
      retryOnBlocked: false,
      useSessionPool: true,
      persistCookiesPerSession: true,
      sessionPoolOptions: {
        maxPoolSize: sessions,
        blockedStatusCodes: [],
        sessionOptions: { maxUsageCount: Number.MAX_SAFE_INTEGER },
      },
      preNavigationHooks: [
        () => {
          if (first === Number.POSITIVE_INFINITY) first = performance.now();
        },
      ],
      requestHandler: ({ response }) => {
        if (response.statusCode === 200) handled++;
        else failed++;
        last = performance.now();
      },
      failedRequestHandler: () => {
        failed++;
        last = performance.now();
      },
    },
    config,
  );
  await crawler.run(
    urls.map((url) => ({ url })),
    { waitForAllRequestsToBeAdded: true },
  );
  return { pages: handled + failed, failed, ms: Math.max(1, last - first) };
}

if (pages.warmup.length > 0) await crawl(pages.warmup);
const cpuBefore = process.cpuUsage();
const measured = await crawl(pages.measured);
const cpu = process.cpuUsage(cpuBefore);
process.stdout.write(
  `crawlee-result ${JSON.stringify({
    pages: measured.pages,
    pagesPerSecond: measured.pages / (measured.ms / 1000),
    failed: measured.failed,
    cpuMsPerPage: (cpu.user + cpu.system) / 1000 / Math.max(1, measured.pages),
    rssMb: process.resourceUsage().maxRSS / 1024,
  })}\n`,
);
// Crawlee's event manager keeps timers of its own; the result is out, so leave now.
process.exit(0);
