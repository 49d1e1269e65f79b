import { fileURLToPath } from 'node:url';
import { CRAWL_QUEUE, keyLayout, parseCrawlDefinition } from '@crawlfleet/core';
import { CrawlStore } from '@crawlfleet/crawls';
import { Producer } from '@crawlfleet/producer';
import { Queue } from 'bullmq';
import { type Bench, median, openBench, round2, startWorker, type Workload } from './fleet.js';

/** The handler of the following side: it parses each page, enqueues its links and pushes one record. */
const HANDLER = fileURLToPath(new URL('../../src/bench/follow-handler.mjs', import.meta.url));

export interface FollowingBenchOptions {
  /** Pages of the wide graph each run fetches. */
  pages: number;
  rounds: number;
  concurrency: number;
  progress: (message: string) => void;
}

export interface FollowingBenchResult {
  pages: number;
  rounds: number;
  concurrency: number;
  /** crawlfleet fetching the graph's pages as submitted URLs: no crawl, no handler. */
  plainPagesPerSecond: number;
  /** crawlfleet crawling the graph from its first page, every page through the handler. */
  followingPagesPerSecond: number;
  /** Median of the rounds' following/plain ratios. */
  ratio: number;
  roundRatios: number[];
  /** Records the following runs wrote, against the pages they stored: one each. */
  records: number;
  stored: number;
}

/**
 * Link following against the plain fetch of the same pages, one crawlfleet worker each, warm
 * (a first run of each side is not counted): the plain side is given every URL of the wide graph
 * (`/wide/<i>?of=N`); the following side is given its first page as a named crawl, and its
 * handler parses each page (cheerio), enqueues the links and pushes one record, so links go
 * through the frontier (the result's own write, the movers) and records through the outbox.
 */
export async function benchFollowing(options: FollowingBenchOptions): Promise<FollowingBenchResult> {
  const bench = await openBench({ retain: options.pages * 2, progress: options.progress });
  const workload: Workload = { sessions: 0, freshSessions: false, concurrency: options.concurrency, page: () => '' };
  try {
    const sides = { plain: [] as number[], following: [] as number[] };
    const ratios: number[] = [];
    let records = 0;
    let stored = 0;
    for (let round = 0; round <= options.rounds; round++) {
      const order = round % 2 === 0 ? (['plain', 'following'] as const) : (['following', 'plain'] as const);
      const perSide: Record<string, number> = {};
      for (const side of order) {
        const run = await runFollowing(bench, workload, side, options.pages, `follow-${round}-${side}`);
        perSide[side] = run.pagesPerSecond;
        options.progress(
          `  ${side}: ${Math.round(run.pagesPerSecond)} pages/s${round === 0 ? ' (warm-up, not counted)' : ''}`,
        );
        if (round === 0) continue;
        sides[side].push(run.pagesPerSecond);
        if (side === 'following') {
          records += run.records;
          stored += run.stored;
        }
      }
      if (round > 0) ratios.push(round2((perSide.following ?? 0) / (perSide.plain ?? 1)));
    }
    return {
      pages: options.pages,
      rounds: options.rounds,
      concurrency: options.concurrency,
      plainPagesPerSecond: Math.round(median(sides.plain)),
      followingPagesPerSecond: Math.round(median(sides.following)),
      ratio: round2(median(ratios)),
      roundRatios: ratios,
      records,
      stored,
    };
  } finally {
    await bench.close();
  }
}

/** One side's run on a prefix of its own: pages per second from the queue's start to the last page stored. */
async function runFollowing(
  bench: Bench,
  workload: Workload,
  side: 'plain' | 'following',
  pages: number,
  prefix: string,
): Promise<{ pagesPerSecond: number; records: number; stored: number }> {
  const keys = keyLayout(prefix);
  const queue = new Queue(CRAWL_QUEUE, { connection: bench.control, prefix: keys.bullPrefix });
  await queue.pause();
  const producer = new Producer(bench.control, keys, bench.config);
  const url = (index: number) => bench.site.url(`/wide/${index}?of=${pages}`);
  try {
    if (side === 'plain') {
      const jobs = producer.prepare(
        Array.from({ length: pages }, (_, index) => ({ url: url(index) })),
        { tenant: 'default' },
      );
      await producer.submit(jobs);
    } else {
      const [seed] = producer.prepare([{ url: url(0) }], { tenant: 'default', crawl: { name: 'wide', depth: 0 } });
      if (seed === undefined) throw new Error('no seed job');
      const definition = parseCrawlDefinition({
        v: 1,
        name: 'wide',
        tenant: 'default',
        follow: 'none',
        createdAt: new Date().toISOString(),
      });
      await new CrawlStore(bench.control, keys).start(definition, [seed.idempotencyKey], true);
      await producer.submit([seed]);
    }
  } finally {
    await producer.close();
  }
  const child = startWorker(bench, 'crawlfleet', workload, keys, side === 'following' ? ['--handler', HANDLER] : []);
  const crawls = new CrawlStore(bench.control, keys);
  try {
    await child.printed('"worker started"', 30_000);
    const started = performance.now();
    await queue.resume();
    const deadline = Date.now() + 180_000;
    for (;;) {
      const done =
        side === 'plain'
          ? await bench.control.zcard(`${keys.bullPrefix}:${CRAWL_QUEUE}:completed`)
          : ((await crawls.status('wide'))?.stored ?? 0);
      if (done >= pages) break;
      const code = child.exitCode();
      if (code !== undefined) throw new Error(`the ${side} worker exited (${code}) early: ${child.tail()}`);
      if (Date.now() > deadline)
        throw new Error(`the ${side} run stored ${done} of ${pages} pages in 180 s: ${child.tail()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const seconds = (performance.now() - started) / 1000;
    const status = side === 'following' ? await crawls.status('wide') : undefined;
    return { pagesPerSecond: pages / seconds, records: status?.records ?? 0, stored: status?.stored ?? 0 };
  } finally {
    await child.stop();
    await queue.close();
  }
}
