import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CRAWL_QUEUE, keyLayout } from '@crawlfleet/core';
import { type DeadLetter, DeadLetterQueue } from '@crawlfleet/dlq';
import { freePort, type RedisServer, startRedisServer } from '@crawlfleet/local-redis';
import { ResultsStore, type StoredResult } from '@crawlfleet/results';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { runCli, waitFor } from '../src/harness.js';
import { startWorkerProcess, type WorkerProcess } from '../src/processes.js';

const TIMEOUT_MS = 1_000;
const CONCURRENCY = 32;
const MAX_BODY_BYTES = 1024 * 1024;
/**
 * How far from `fetch.timeoutMs` a timeout may fire, as seen from the site: a request reaches it a
 * little after the worker's timer started, and the DLQ entry is written a little after it fired.
 */
const TIMEOUT_EARLY_MS = 300;
const TIMEOUT_LATE_MS = 1_000;
/** The event loop counts as blocked when /healthz, or the loop's own lag, takes longer than this. */
const MAX_STALL_MS = 500;
const MAX_RSS_BYTES = 250 * 1024 * 1024;
/**
 * What the third wave may add to the resident set over the second: more would be a leak per job.
 * Not the second over the first: the young generation (`--max-semi-space-size=32`, up to 64 MB
 * for both halves) may or may not have grown to its size by the end of the first wave, which
 * alone moved the first-to-second growth between -22 and +46 MB over ten runs on this machine.
 */
const MAX_RSS_GROWTH_BYTES = 40 * 1024 * 1024;

/** What one kind of target should come to, and how many of it a wave holds. */
interface Fault {
  kind: string;
  count: number;
  path: (wave: number, i: number) => string;
  expect:
    | { stored: true; attempts: number }
    | { stored: false; reason: string; attempts: number; attemptReason: string; timed?: boolean };
}

const FAULTS: Fault[] = [
  { kind: 'ok', count: 120, path: (w, i) => `/ok/w${w}/${i}`, expect: { stored: true, attempts: 1 } },
  {
    kind: 'slow under the timeout',
    count: 40,
    path: (w, i) => `/slow?i=${i}&ms=${100 + (i % 5) * 50}&w=${w}`,
    expect: { stored: true, attempts: 1 },
  },
  {
    kind: 'reset once',
    count: 20,
    path: (w, i) => `/reset-once/w${w}-${i}`,
    expect: { stored: true, attempts: 2 },
  },
  {
    kind: 'huge under the cap',
    count: 10,
    path: (w, i) => `/huge?bytes=${256 * 1024}&i=${i}&text=1&w=${w}`,
    expect: { stored: true, attempts: 1 },
  },
  {
    kind: 'hang',
    count: 20,
    path: (w, i) => `/hang?i=${i}&w=${w}`,
    expect: {
      stored: false,
      reason: 'retries_exhausted:timeout',
      attempts: 2,
      attemptReason: 'timeout',
      timed: true,
    },
  },
  {
    kind: 'slow over the timeout',
    count: 20,
    path: (w, i) => `/slow?i=${i}&ms=5000&w=${w}`,
    expect: {
      stored: false,
      reason: 'retries_exhausted:timeout',
      attempts: 2,
      attemptReason: 'timeout',
      timed: true,
    },
  },
  {
    kind: 'reset',
    count: 20,
    path: (w, i) => `/reset?i=${i}&w=${w}`,
    expect: {
      stored: false,
      reason: 'retries_exhausted:connection_reset',
      attempts: 2,
      attemptReason: 'connection_reset',
    },
  },
  {
    kind: 'garbage',
    count: 20,
    path: (w, i) => `/garbage?i=${i}&w=${w}`,
    expect: {
      stored: false,
      reason: 'retries_exhausted:protocol_error',
      attempts: 2,
      attemptReason: 'protocol_error',
    },
  },
  {
    kind: 'huge over the cap, declared',
    count: 10,
    path: (w, i) => `/huge?bytes=${8 * MAX_BODY_BYTES}&i=${i}&w=${w}`,
    expect: { stored: false, reason: 'body_too_large', attempts: 1, attemptReason: 'body_too_large' },
  },
  {
    kind: 'huge over the cap, chunked',
    count: 10,
    path: (w, i) => `/huge-chunked?bytes=${8 * MAX_BODY_BYTES}&i=${i}&w=${w}`,
    expect: { stored: false, reason: 'body_too_large', attempts: 1, attemptReason: 'body_too_large' },
  },
];
const WAVE = FAULTS.reduce((sum, fault) => sum + fault.count, 0);

/** The value of one unlabelled sample line of Prometheus text, e.g. `process_resident_memory_bytes 5.1e7`. */
function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

/** The child's resident set from the kernel, so memory is seen even if /metrics stopped answering. */
function vmRss(pid: number): number {
  const kib = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  if (kib === undefined) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(kib) * 1024;
}

/** What the sampler saw of the worker while the faults ran. */
interface HealthLog {
  /** /healthz round trips: status and milliseconds. */
  probes: { status: number; ms: number }[];
  /** The loop's worst delay since the previous scrape, in ms (prom-client resets it each scrape). */
  lagMaxMs: number[];
  /** Resident set size (bytes) from /proc and from /metrics. */
  rss: number[];
}

/** Probes /healthz every 100 ms and scrapes /metrics every 500 ms until stopped (or `limitMs` passes). */
function sampleHealth(port: number, pid: number, limitMs: number): { log: HealthLog; stop(): Promise<void> } {
  const log: HealthLog = { probes: [], lagMaxMs: [], rss: [] };
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + limitMs;
  let stopped = false;
  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const probing = (async () => {
    while (!stopped && Date.now() < deadline) {
      const started = performance.now();
      try {
        const res = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(5_000) });
        await res.text();
        log.probes.push({ status: res.status, ms: performance.now() - started });
      } catch {
        log.probes.push({ status: 0, ms: performance.now() - started });
      }
      await pause(100);
    }
  })();
  const scraping = (async () => {
    while (!stopped && Date.now() < deadline) {
      try {
        log.rss.push(vmRss(pid));
      } catch {
        // The worker is gone; the probes say so.
      }
      const text = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(5_000) })
        .then((res) => res.text())
        .catch(() => '');
      const lag = sample(text, 'nodejs_eventloop_lag_max_seconds');
      const rss = sample(text, 'process_resident_memory_bytes');
      log.lagMaxMs.push(lag === undefined ? Number.POSITIVE_INFINITY : lag * 1000);
      if (rss !== undefined) log.rss.push(rss);
      await pause(500);
    }
  })();
  return {
    log,
    async stop() {
      stopped = true;
      await Promise.all([probing, scraping]);
    },
  };
}

describe('a target that hangs, resets, answers garbage or floods', () => {
  let server: RedisServer;
  let redis: Redis;
  let site: FixtureSite;
  let dir: string;
  let worker: WorkerProcess | undefined;
  let queue: Queue | undefined;
  let dlq: DeadLetterQueue | undefined;

  beforeAll(async () => {
    server = await startRedisServer();
    redis = new Redis(server.url, { maxRetriesPerRequest: null });
    site = await startFixtureSite();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-faults-'));
  });
  afterAll(async () => {
    await worker?.stop('SIGKILL');
    await dlq?.close();
    await queue?.close();
    redis.disconnect();
    await server.stop();
    await site.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps the worker responsive and bounded, fires timeouts on time and classifies every job once', async () => {
    const config = join(dir, 'crawlfleet.config.json');
    writeFileSync(
      config,
      JSON.stringify({
        tenants: { default: { allowHosts: ['127.0.0.1'], robots: 'ignore' } },
        fetch: {
          timeoutMs: TIMEOUT_MS,
          maxBodyBytes: MAX_BODY_BYTES,
          resultBodyBytes: 64 * 1024,
          // Fewer sockets than jobs at once: requests queue behind hung ones, and that wait must not
          // count against their timeout (it starts when a request has a socket).
          maxSocketsPerHost: CONCURRENCY / 2,
        },
        jobs: { retries: 1, backoffBaseMs: 20, backoffMaxMs: 100 },
      }),
    );
    const env = {
      REDIS_URL: server.url,
      CRAWLFLEET_CONFIG: config,
      CRAWLFLEET_PREFIX: 'faults',
      CRAWLFLEET_LOG_LEVEL: 'warn',
    };
    const keys = keyLayout('faults');
    const port = await freePort();
    const started = startWorkerProcess(env, ['--metrics-port', String(port), '--concurrency', String(CONCURRENCY)]);
    worker = started;
    const pid = started.child.pid as number;
    const answers = async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.ok;
    await waitFor(answers, { timeoutMs: 15_000, what: 'the worker to answer /healthz' });
    // The first scrape reports the loop since start-up (module loading); only what follows counts.
    await fetch(`http://127.0.0.1:${port}/metrics`).then((res) => res.text());

    queue = new Queue(CRAWL_QUEUE, { connection: redis, prefix: keys.bullPrefix });
    const results = new ResultsStore(redis, keys, { ledgerTtlSeconds: 3_600 });
    const letters = new DeadLetterQueue(redis, keys);
    dlq = letters;
    const idle = async () => {
      const counts = await (queue as Queue).getJobCounts('waiting', 'prioritized', 'active', 'delayed');
      return Object.values(counts).every((n) => n === 0);
    };

    const sampler = sampleHealth(port, pid, 50_000);
    const rssAfterWave: number[] = [];
    const expected = new Map<string, Fault>();
    try {
      for (const wave of [0, 1, 2]) {
        const urls = FAULTS.flatMap((fault) =>
          Array.from({ length: fault.count }, (_, i) => {
            const url = site.url(fault.path(wave, i));
            expected.set(url, fault);
            return url;
          }),
        );
        const file = join(dir, `wave-${wave}.txt`);
        writeFileSync(file, urls.join('\n'));
        const submitted = await runCli(['submit', '--file', file, '--json'], { env });
        expect(JSON.parse(submitted.stdout)).toEqual({ enqueued: WAVE, duplicates: 0 });
        await waitFor(
          async () => (await results.count()) + (await letters.count()) >= expected.size && (await idle()),
          {
            timeoutMs: 20_000,
            intervalMs: 100,
            what: `every job of wave ${wave} to end`,
          },
        );
        rssAfterWave.push(vmRss(pid));
      }
    } finally {
      await sampler.stop();
    }

    // Exactly one outcome per job: a result or a DLQ entry, never both, never two.
    const stored = new Map<string, StoredResult[]>();
    for await (const { result } of results.entries())
      stored.set(result.url, [...(stored.get(result.url) ?? []), result]);
    const dead = new Map<string, DeadLetter[]>();
    for await (const letter of letters.entries()) {
      const url = letter.url as string;
      dead.set(url, [...(dead.get(url) ?? []), letter]);
    }
    expect(new Set([...stored.keys(), ...dead.keys()])).toEqual(new Set(expected.keys()));
    for (const [url, fault] of expected) {
      const outcomes = { url, results: stored.get(url)?.length ?? 0, letters: dead.get(url)?.length ?? 0 };
      expect(outcomes).toEqual({ url, results: fault.expect.stored ? 1 : 0, letters: fault.expect.stored ? 0 : 1 });
    }

    // Each kind ends as it should, with the reason of its fault (never internal_error).
    for (const [url, fault] of expected) {
      const want = fault.expect;
      if (want.stored) {
        const result = stored.get(url)?.[0] as StoredResult;
        expect({ kind: fault.kind, url, status: result.status, attempts: result.attempts }).toEqual({
          kind: fault.kind,
          url,
          status: 200,
          attempts: want.attempts,
        });
        continue;
      }
      const letter = dead.get(url)?.[0] as DeadLetter;
      expect({
        kind: fault.kind,
        url,
        class: letter.class,
        reason: letter.reason,
        attempts: letter.attempts,
        history: letter.history.map((h) => h.reason),
      }).toEqual({
        kind: fault.kind,
        url,
        // Faults retried until they ran out keep their recoverable class (the reason says so);
        // a fault that is never retried is non_recoverable.
        class: want.attempts > 1 ? 'recoverable' : 'non_recoverable',
        reason: want.reason,
        attempts: want.attempts,
        history: Array.from({ length: want.attempts }, () => want.attemptReason),
      });
      if (!want.timed) continue;
      // Every attempt reached the site, and gave up fetch.timeoutMs after it arrived there.
      const parsed = new URL(url);
      const arrived = site.hitTimes(parsed.pathname + parsed.search);
      const gaveUp = [...letter.history.slice(0, -1).map((h) => Date.parse(h.at)), Date.parse(letter.failedAt)];
      expect(arrived).toHaveLength(want.attempts);
      for (const [i, at] of arrived.entries()) {
        const waited = (gaveUp[i] as number) - at;
        expect(waited, `${url} attempt ${i + 1}`).toBeGreaterThanOrEqual(TIMEOUT_MS - TIMEOUT_EARLY_MS);
        expect(waited, `${url} attempt ${i + 1}`).toBeLessThan(TIMEOUT_MS + TIMEOUT_LATE_MS);
      }
    }

    // The worker stayed healthy throughout: /healthz quick every time, the loop never stalled.
    const { probes, lagMaxMs, rss } = sampler.log;
    expect(probes.length).toBeGreaterThan(20);
    expect(lagMaxMs.length).toBeGreaterThan(4);
    expect(probes.filter((p) => p.status !== 200)).toEqual([]);
    expect(Math.max(...probes.map((p) => p.ms))).toBeLessThan(MAX_STALL_MS);
    expect(Math.max(...lagMaxMs)).toBeLessThan(MAX_STALL_MS);
    // Memory bounded, and not climbing from one wave of faults to the next.
    expect(Math.max(...rss, ...rssAfterWave)).toBeLessThan(MAX_RSS_BYTES);
    const [, middle, end] = rssAfterWave as [number, number, number];
    expect(end - middle).toBeLessThan(MAX_RSS_GROWTH_BYTES);

    expect(started.output()).not.toContain('internal_error');
    expect(started.output()).not.toContain('job failed outside the crawl path');
    expect(await started.stop('SIGTERM')).toBe(0);
  });
});
