import type { Redis } from 'ioredis';
import { slotOf } from './keys.js';
import { isCluster, mastersOf, type RedisClient } from './redis.js';

/** What `awaitReplicas` found: the masters that have replicas, and those whose writes none confirmed in time. */
export interface Replication {
  /** Masters with at least one connected replica. */
  replicated: number;
  /** Of those, the masters whose writes on this connection no replica acknowledged within the timeout. */
  unconfirmed: number;
}

/**
 * Waits until a replica of each master holds what this client wrote to it (`WAIT 1`), so a master
 * that dies right after cannot take those writes with it: Redis replication is asynchronous, and
 * a replica promoted in its place has only what reached it. Masters without a connected replica
 * are not waited on (there is nothing to wait for). Never throws: a master that cannot answer
 * counts as unconfirmed. With `key`, only the master that serves it is waited on.
 */
export async function awaitReplicas(redis: RedisClient, timeoutMs: number, key?: string): Promise<Replication> {
  const answers = await Promise.all(
    mastersFor(redis, key).map(async (master) => {
      try {
        if ((await replicasOf(master)) === 0) return 'none';
        return Number(await master.call('WAIT', '1', String(timeoutMs))) >= 1 ? 'confirmed' : 'unconfirmed';
      } catch {
        return 'unconfirmed';
      }
    }),
  );
  return {
    replicated: answers.filter((answer) => answer !== 'none').length,
    unconfirmed: answers.filter((answer) => answer === 'unconfirmed').length,
  };
}

/** Every master, or the one serving `key` (all of them while the slot map is not known yet). */
function mastersFor(redis: RedisClient, key: string | undefined) {
  const masters = mastersOf(redis);
  if (key === undefined || !isCluster(redis)) return masters;
  const owner = redis.slots[slotOf(key)]?.[0];
  const found = masters.filter((master) => `${master.options.host}:${master.options.port}` === owner);
  return found.length > 0 ? found : masters;
}

/** How long a master's replica count is taken as known: a dead letter or a submit does not ask each time. */
const REPLICAS_KNOWN_MS = 10_000;
const knownReplicas = new WeakMap<Redis, { replicas: number; until: number }>();

/** The replicas connected to a master (`INFO replication`), read at most every `REPLICAS_KNOWN_MS`. */
async function replicasOf(master: Redis): Promise<number> {
  const known = knownReplicas.get(master);
  if (known !== undefined && known.until > Date.now()) return known.replicas;
  const info = String(await master.info('replication'));
  const replicas = Number(/connected_slaves:(\d+)/.exec(info)?.[1] ?? 0);
  knownReplicas.set(master, { replicas, until: Date.now() + REPLICAS_KNOWN_MS });
  return replicas;
}
