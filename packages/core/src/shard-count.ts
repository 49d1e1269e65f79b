import { InputError } from './errors.js';
import { CRAWL_QUEUE, type KeyLayout } from './keys.js';
import type { RedisClient } from './redis.js';

/**
 * Makes sure every process of a fleet spreads its jobs over the same shards: the first process
 * records its `queue.shards`; one configured with another count is refused with a one-line error
 * (exit 2), since its jobs, results and ledger marks would go to keys the others do not read. A
 * fleet from before shard counts were recorded ran one shard: its keys say so.
 */
export async function checkShardCount(redis: RedisClient, keys: KeyLayout): Promise<void> {
  const wanted = keys.shards.length;
  let recorded = await redis.get(keys.shardCount);
  if (recorded === null) {
    if (wanted > 1 && (await ranOneShard(redis, keys))) recorded = '1';
    else {
      // The first process records its count; of two starting at once, the first write stands.
      await redis.set(keys.shardCount, String(wanted), 'NX');
      recorded = (await redis.get(keys.shardCount)) ?? String(wanted);
    }
  }
  if (Number(recorded) !== wanted) {
    throw new InputError(
      'shards_differ',
      `the fleet under prefix ${keys.prefix} runs ${recorded} shard${recorded === '1' ? '' : 's'} and this config has queue.shards ${wanted}: set it to ${recorded} (changing it is a migration: docs/redis-cluster.md)`,
    );
  }
}

/** Whether the fleet's keys of one shard (the fleet tag itself) hold a queue or an outbox. */
async function ranOneShard(redis: RedisClient, keys: KeyLayout): Promise<boolean> {
  const tag = keys.bullPrefix;
  const [queue, results] = await Promise.all([
    redis.exists(`${tag}:${CRAWL_QUEUE}:meta`),
    redis.exists(`${tag}:results`),
  ]);
  return queue + results > 0;
}
