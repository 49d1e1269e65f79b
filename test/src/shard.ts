import type { KeyLayout, ShardKeys } from '@crawlfleet/core';

/**
 * The one shard of a fleet's key layout (`queue.shards: 1`, what most tests run): its results
 * outbox and frontier. Throws for a sharded layout, whose keys a test names shard by shard.
 */
export function soleShard(keys: KeyLayout): ShardKeys {
  const [shard, ...others] = keys.shards;
  if (shard === undefined || others.length > 0)
    throw new Error(`expected one shard, the layout has ${keys.shards.length}`);
  return shard;
}
