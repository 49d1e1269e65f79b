import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BodyReader } from '@crawlfleet/bodies';
import { Outbox, ResultsStore, type StoredResult } from '@crawlfleet/results';
import { JsonlFile, OutboxConsumer, type OutboxConsumerOptions } from '@crawlfleet/sinks';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { cleanupPrefix, keyLayout, openTestRedis, uniquePrefix } from '../src/harness.js';
import { soleShard } from '../src/shard.js';
import { storedResult as result } from '../src/stored-result.js';

let redis: Redis;
let prefix: string;
let keys: ReturnType<typeof keyLayout>;
let store: ResultsStore;
let dir: string;
let files = 0;
const bodies = new BodyReader();

beforeAll(() => {
  redis = openTestRedis();
});

afterAll(async () => {
  await bodies.close();
  await redis.quit();
});

beforeEach(() => {
  prefix = uniquePrefix('consumer');
  keys = keyLayout(prefix);
  store = new ResultsStore(redis, keys, { ledgerTtlSeconds: 3_600 });
  dir = mkdtempSync(join(tmpdir(), 'crawlfleet-consumer-'));
});

afterEach(async () => {
  await cleanupPrefix(redis, prefix);
  rmSync(dir, { recursive: true, force: true });
});

async function write(count: number, tag: string): Promise<void> {
  await Promise.all(Array.from({ length: count }, (_, i) => store.write(result(`ik-${tag}-${i}`))));
}

/** Runs a sink once into a new JSON Lines file; answers its progress and the keys it wrote. */
async function runOnce(
  name: string,
  options: Partial<OutboxConsumerOptions> = {},
): Promise<{ written: number; claimed: number; keys: string[] }> {
  const file = await JsonlFile.create(join(dir, `out-${++files}.jsonl`));
  const consumer = new OutboxConsumer({
    redis,
    keys,
    name,
    target: file,
    bodies,
    once: true,
    batchSize: 20,
    ...options,
  });
  const progress = await consumer.run();
  await file.close();
  const lines = readFileSync(file.path, 'utf8').split('\n').filter(Boolean);
  return {
    written: progress.written,
    claimed: progress.claimed,
    keys: lines.map((line) => (JSON.parse(line) as StoredResult).idempotencyKey),
  };
}

/** What a consumer of another machine holds: delivered to it, never acknowledged. */
async function readAs(group: string, consumer: string, count: number): Promise<void> {
  await redis.xreadgroup('GROUP', group, consumer, 'COUNT', count, 'STREAMS', soleShard(keys).results, '>');
}

describe('OutboxConsumer', () => {
  it('takes over what a consumer on another host held once its heartbeat lapsed, and not before', async () => {
    await write(100, 'claim');
    await new Outbox(redis, keys).register('pg');
    // A live consumer elsewhere holds 30; its heartbeat key says it is alive.
    await readAs('pg', 'elsewhere:4242', 30);
    await redis.set(keys.sinkConsumer('pg', 'elsewhere:4242'), '4242', 'PX', 60_000);

    const first = await runOnce('pg');
    expect(first).toMatchObject({ written: 70, claimed: 0 });
    expect((await new Outbox(redis, keys).sinks())[0]).toMatchObject({ pending: 30 });

    // It died: the heartbeat lapsed. The next run takes its 30 over.
    await redis.del(keys.sinkConsumer('pg', 'elsewhere:4242'));
    const second = await runOnce('pg');
    expect(second).toMatchObject({ written: 30, claimed: 30 });
    expect(new Set([...first.keys, ...second.keys]).size).toBe(100);
    expect(await new Outbox(redis, keys).fill()).toEqual({ entries: 0, bytes: 0 });
    // The dead consumer is gone from the group once it holds nothing.
    const consumers = (await redis.xinfo('CONSUMERS', soleShard(keys).results, 'pg')) as unknown[][];
    expect(consumers.map((fields) => fields[1])).not.toContain('elsewhere:4242');
  });

  it('ends a drain at the newest entry there was when it started', async () => {
    await write(40, 'before');
    const file = await JsonlFile.create(join(dir, 'drain.jsonl'));
    const consumer = new OutboxConsumer({ redis, keys, name: 'files', target: file, bodies, batchSize: 10 });
    const running = consumer.run();
    consumer.drain();
    const progress = await running;
    await file.close();
    expect(progress.written).toBe(40);
    // What comes after waits for the next run.
    await write(5, 'after');
    expect((await new Outbox(redis, keys).sinks())[0]).toMatchObject({ name: 'files', lag: 5, pending: 0 });
  });

  it('leaves the entries it does not select pending, so the outbox keeps them for other sinks', async () => {
    await write(30, 'mine');
    await write(10, 'theirs');
    await write(30, 'mine-too');
    const outbox = new Outbox(redis, keys);
    const taken = await runOnce('crawl', {
      keepRejected: true,
      select: async (entries) =>
        entries.map((entry) => 'result' in entry && !entry.result.idempotencyKey.startsWith('ik-theirs')),
    });

    expect(taken.written).toBe(60);
    expect(taken.keys.every((key) => !key.startsWith('ik-theirs'))).toBe(true);
    // Trimmed up to the first entry it kept pending; nothing past it.
    expect((await outbox.fill()).entries).toBe(40);
    expect((await outbox.sinks())[0]).toMatchObject({ pending: 10, lag: 0 });
    // Removing the sink gives them back to whoever else reads the outbox (here: no one, so all stay).
    await outbox.remove('crawl');
    expect((await outbox.fill()).entries).toBe(40);
  });

  it('reads again, at start, what the same consumer held when it stopped', async () => {
    await write(25, 'own');
    await new Outbox(redis, keys).register('files');
    await readAs('files', 'me:1', 25);

    const again = await runOnce('files', { consumer: 'me:1' });

    expect(again).toMatchObject({ written: 25, claimed: 0 });
    expect((await new Outbox(redis, keys).sinks())[0]).toMatchObject({ pending: 0, lag: 0 });
  });
});
