import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BodyReader } from '@crawlfleet/bodies';
import type { KeyLayout } from '@crawlfleet/core';
import { Outbox } from '@crawlfleet/results';
import { JsonlFile, OutboxConsumer } from '@crawlfleet/sinks';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { startTestWorker, submit, type TestWorker } from '../src/fleet.js';
import { cleanupPrefix, keyLayout, openTestRedis, testConfig, uniquePrefix, waitFor } from '../src/harness.js';

const MiB = 1024 * 1024;
const PAGE_BYTES = 200_000;
const PAGES = 40;

describe('the outbox byte budget', () => {
  let site: FixtureSite;
  let redis: Redis;
  let prefix: string;
  let keys: KeyLayout;
  let worker: TestWorker | undefined;
  let dir: string;

  beforeAll(async () => {
    site = await startFixtureSite();
    redis = openTestRedis();
    prefix = uniquePrefix('outbox-bytes');
    keys = keyLayout(prefix);
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-outbox-bytes-'));
  });
  afterAll(async () => {
    await worker?.stop();
    await cleanupPrefix(redis, prefix);
    redis.disconnect();
    await site.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('holds the worker back once the inline bodies pass outboxMaxBytes, and lets it go when a sink takes them', async () => {
    const config = testConfig({ results: { outboxMaxBytes: MiB } });
    const urls = Array.from({ length: PAGES }, (_, i) => ({
      url: site.url(`/huge?bytes=${PAGE_BYTES}&text=1&stamp=${i}`),
    }));
    await submit(redis, keys, config, urls);
    worker = await startTestWorker(keys, config, { concurrency: 2 });
    const outbox = new Outbox(redis, keys);

    await waitFor(() => worker?.worker.outbox.holding, { timeoutMs: 20_000, what: 'the worker to hold back' });
    // Let what it held finish, then nothing more comes.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const held = await outbox.fill();
    expect(held.bytes).toBeGreaterThanOrEqual(MiB);
    // A megabyte is five pages; the worker finishes the two it held at most.
    expect(held.entries).toBeLessThanOrEqual(Math.ceil(MiB / PAGE_BYTES) + 2);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(await outbox.fill()).toEqual(held);

    // A sink drains the outbox while the worker finishes the crawl.
    const file = await JsonlFile.create(join(dir, 'out.jsonl'));
    const bodies = new BodyReader();
    const consumer = new OutboxConsumer({
      redis,
      keys,
      name: 'files',
      target: file,
      bodies,
      batchSize: 4,
      blockMs: 100,
    });
    const running = consumer.run();
    await waitFor(async () => consumer.done.written >= PAGES, { timeoutMs: 30_000, what: 'every page in the sink' });
    consumer.stop();
    await running;
    await file.close();
    await bodies.close();

    const lines = readFileSync(file.path, 'utf8').split('\n').filter(Boolean);
    expect(new Set(lines.map((line) => JSON.parse(line).idempotencyKey)).size).toBe(PAGES);
    // The last pages may have filled the outbox again behind the sink; a holding worker looks
    // again every half second and lets go once it sees the room.
    await waitFor(() => worker?.worker.outbox.holding === false, { timeoutMs: 5_000, what: 'the worker to let go' });
    expect(await outbox.fill()).toEqual({ entries: 0, bytes: 0 });
  });
});
