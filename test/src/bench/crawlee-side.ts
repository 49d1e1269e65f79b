import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Bench, Workload } from './fleet.js';
import { startChild } from './worker-process.js';

const CRAWLEE_WORKER_PATH = fileURLToPath(new URL('./crawlee-worker.js', import.meta.url));

/** What one run of `crawlee-worker.js` gave (its measured crawl). */
export interface CrawleeRun {
  /** Pages over the time from the first request's start to the last handler's end. */
  pagesPerSecond: number;
  /** Pages that did not end in the request handler with a 200. */
  failed: number;
  /** CPU time of the crawler process per page over the measured crawl, all threads. */
  cpuMsPerPage: number;
  /** Peak RSS of the crawler process. */
  rssMb: number;
}

function isCrawleeRun(value: unknown): value is CrawleeRun {
  const run = value as Partial<CrawleeRun> | undefined;
  return (
    typeof run?.pagesPerSecond === 'number' &&
    typeof run.failed === 'number' &&
    typeof run.cpuMsPerPage === 'number' &&
    typeof run.rssMb === 'number'
  );
}

/**
 * Crawlee's HttpCrawler, in its own process, on the pages a run of the other sides fetches
 * (`warmupJobs` warm-up pages, then `jobs` measured ones), with `workload.sessions` sessions in
 * its pool and `workload.concurrency` requests at once.
 */
export async function runCrawlee(
  bench: Bench,
  workload: Workload,
  options: { jobs: number; warmupJobs: number },
): Promise<CrawleeRun> {
  const run = ++bench.runs;
  bench.site.resetHits();
  const tag = `r${run}`;
  const urls = (count: number, batch: string, warmup: boolean) =>
    Array.from({ length: count }, (_, index) =>
      bench.site.url(workload.page({ index, id: `${batch}-${index}`, warmup })),
    );
  const pagesPath = join(bench.dir, `crawlee-pages-${run}.json`);
  writeFileSync(
    pagesPath,
    JSON.stringify({ warmup: urls(options.warmupJobs, `${tag}w`, true), measured: urls(options.jobs, tag, false) }),
  );
  const child = startChild([CRAWLEE_WORKER_PATH], {
    BENCH_PAGES: pagesPath,
    BENCH_CONCURRENCY: String(workload.concurrency),
    BENCH_SESSIONS: String(workload.sessions),
  });
  let output: string;
  try {
    // Bounded: 50 ms a page is ten times slower than Crawlee runs here, plus its start-up.
    const code = await child.ended(30_000 + (options.jobs + options.warmupJobs) * 50);
    output = child.tail();
    if (code !== 0) throw new Error(`crawlee-worker exited ${code}: ${output}`);
  } finally {
    await child.stop();
    rmSync(pagesPath, { force: true });
  }
  const line = /^crawlee-result (\{.*\})$/m.exec(output)?.[1];
  const result: unknown = line === undefined ? undefined : JSON.parse(line);
  if (!isCrawleeRun(result)) throw new Error(`crawlee-worker printed no result: ${output}`);
  bench.progress(
    `  crawlee: ${Math.round(result.pagesPerSecond)} pages/s, RSS ${Math.round(result.rssMb)} MB, CPU ${result.cpuMsPerPage.toFixed(2)} ms/page${result.failed > 0 ? `, ${result.failed} FAILED` : ''}`,
  );
  return result;
}
