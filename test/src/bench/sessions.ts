import { keyLayout, openSessionRedis, sessionsConfigSchema, whenReady } from '@crawlfleet/core';
import { startRedisServer } from '@crawlfleet/local-redis';
import { createLogger } from '@crawlfleet/log';
import { loadSessionHasher, SessionManager } from '@crawlfleet/sessions';
import { generateKeyEntry, parseKeyRing, SlateStore } from '@crawlfleet/slates';
import type { Redis } from 'ioredis';

/** Percentile of sorted microsecond samples. */
function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

function summarize(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: Math.round(percentile(sorted, 50)), p99: Math.round(percentile(sorted, 99)) };
}

/** Counts socket writes: a pipeline or a script is one round trip. */
function countRoundTrips(redis: Redis): () => number {
  const stream = (redis as unknown as { stream: { write: (...args: unknown[]) => boolean } }).stream;
  let writes = 0;
  const write = stream.write.bind(stream);
  stream.write = (...args: unknown[]) => {
    writes++;
    return write(...args);
  };
  return () => writes;
}

export interface SessionBenchResult {
  jobs: number;
  rtt: { p50: number; p99: number };
  noSession: { p50: number; p99: number };
  session: { p50: number; p99: number; roundTripsPerJob: number };
  hotSession: { p50: number; p99: number; conflictsPerJob: number; concurrency: number };
}

/**
 * What a session costs a job: hydrate (one read of cookies, auth, profile, meta), one Set-Cookie,
 * and the commit. Against a private redis-server, in one run: a plain round trip for scale, a job
 * with no session (no session work at all), many sessions one job at a time, and one hot session
 * with 16 jobs at once (commits meet newer versions and merge).
 */
export async function benchSessions(jobs = 2_000): Promise<SessionBenchResult> {
  const server = await startRedisServer();
  const redis = openSessionRedis(server.url) as Redis;
  await whenReady(redis, 5_000);
  try {
    const keys = keyLayout('bench');
    const store = new SlateStore(redis, keys, parseKeyRing(generateKeyEntry()));
    const manager = new SessionManager({
      store,
      config: sessionsConfigSchema.parse({}),
      logger: createLogger({ name: 'bench', level: 'silent' }),
      hasher: await loadSessionHasher(redis, keys.sessionHashKey),
    });
    const roundTrips = countRoundTrips(redis);
    const url = 'https://shop.example/';

    const time = async (run: () => Promise<void>) => {
      const started = process.hrtime.bigint();
      await run();
      return Number(process.hrtime.bigint() - started) / 1_000;
    };

    const warm = async (i: number) => {
      const session = await manager.open(store.session('warm', `s${i % 50}`));
      await session.jar.setCookie(`w=${i}; Path=/`, url);
      await session.commit();
    };
    for (let i = 0; i < 200; i++) await warm(i);

    const rtt: number[] = [];
    for (let i = 0; i < jobs; i++) rtt.push(await time(async () => void (await redis.ping())));

    // A job with no session does no session work: this is the floor the session cost adds to.
    const none: number[] = [];
    for (let i = 0; i < jobs; i++) none.push(await time(async () => undefined));

    const before = roundTrips();
    const session: number[] = [];
    for (let i = 0; i < jobs; i++) {
      session.push(
        await time(async () => {
          const opened = await manager.open(store.session('bench', `s${i % 200}`));
          await opened.jar.setCookie(`c${i % 7}=${i}; Path=/`, url);
          await opened.commit();
        }),
      );
    }
    const sessionRoundTrips = (roundTrips() - before) / jobs;

    const concurrency = 16;
    const hot: number[] = [];
    const conflictsBefore = manager.counters.commitConflicts;
    for (let batch = 0; batch < jobs / concurrency; batch++) {
      const samples = await Promise.all(
        Array.from({ length: concurrency }, (_, j) =>
          time(async () => {
            const opened = await manager.open(store.session('bench', 'hot'));
            await opened.jar.setCookie(`h${j}=${batch}; Path=/`, url);
            await opened.commit();
          }),
        ),
      );
      hot.push(...samples);
    }
    return {
      jobs,
      rtt: summarize(rtt),
      noSession: summarize(none),
      session: { ...summarize(session), roundTripsPerJob: Number(sessionRoundTrips.toFixed(2)) },
      hotSession: {
        ...summarize(hot),
        concurrency,
        conflictsPerJob: Number(((manager.counters.commitConflicts - conflictsBefore) / hot.length).toFixed(2)),
      },
    };
  } finally {
    redis.disconnect();
    await server.stop();
  }
}
