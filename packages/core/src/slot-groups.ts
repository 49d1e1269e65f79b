import type { ChainableCommander } from 'ioredis';
import { slotOf } from './keys.js';
import { isCluster, type RedisClient } from './redis.js';

/** One pipelined command's answer, as ioredis gives it. */
export type PipelineAnswer = [Error | null, unknown];

/**
 * Splits `items` into the groups one pipeline can carry: all of them on one Redis; on a cluster,
 * those whose keys are served by the same master (ioredis refuses a pipeline that spans nodes).
 * Before the cluster's slot map is known, each slot is its own group. Order within a group is kept.
 */
export function slotGroups<T>(redis: RedisClient, items: readonly T[], keyOf: (item: T) => string): T[][] {
  if (!isCluster(redis)) return items.length === 0 ? [] : [[...items]];
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const slot = slotOf(keyOf(item));
    const owners = redis.slots[slot];
    const group = owners === undefined ? `slot:${slot}` : owners.join(';');
    const members = groups.get(group);
    if (members === undefined) groups.set(group, [item]);
    else members.push(item);
  }
  return [...groups.values()];
}

/**
 * Pipelines the commands `add` queues for each item, one pipeline per group of `slotGroups` (sent
 * together), and answers each item's commands in the order of `items`. On one Redis this is one
 * pipeline, as before; on a cluster, one per master the items' keys live on.
 */
export async function pipelineEach<T>(
  redis: RedisClient,
  items: readonly T[],
  keyOf: (item: T) => string,
  add: (pipeline: ChainableCommander, item: T) => void,
): Promise<PipelineAnswer[][]> {
  const answers: PipelineAnswer[][] = items.map(() => []);
  const indexed = items.map((item, index) => ({ item, index }));
  await Promise.all(
    slotGroups(redis, indexed, ({ item }) => keyOf(item)).map(async (group) => {
      const pipeline = redis.pipeline();
      const counts = group.map(({ item }) => {
        const before = pipeline.length;
        add(pipeline, item);
        return pipeline.length - before;
      });
      const replies = ((await pipeline.exec()) ?? []) as PipelineAnswer[];
      let at = 0;
      group.forEach(({ index }, i) => {
        const count = counts[i] ?? 0;
        answers[index] = replies.slice(at, at + count);
        at += count;
      });
    }),
  );
  return answers;
}
