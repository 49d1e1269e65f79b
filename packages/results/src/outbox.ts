import { readFileSync } from 'node:fs';
import {
  InputError,
  type KeyLayout,
  NAME_PATTERN,
  type RedisClient,
  type ResultsConfig,
  type ShardKeys,
} from '@crawlfleet/core';
import { compareIds } from './merge-entries.js';

const TRIM_OUTBOX = readFileSync(new URL('../lua/trim-outbox.lua', import.meta.url), 'utf8');

type WithTrimScript = RedisClient & {
  cfTrimOutbox(
    stream: string,
    bytes: string,
    sizes: string,
    limit: number,
    below: string,
  ): Promise<[number, number, number, number]>;
};

/** What the outbox holds now. */
export interface OutboxFill {
  entries: number;
  /** Bytes of the results it holds (their JSON; bodies kept inline count in full). */
  bytes: number;
}

/** A registered sink: a consumer group of the outbox. */
export interface SinkState {
  name: string;
  /** Entries delivered to one of its consumers and not acknowledged yet. */
  pending: number;
  /** Entries it has not read yet; null when Redis cannot tell (an entry was deleted out of order). */
  lag: number | null;
  /** Its consumers (running or dead ones whose pending entries wait to be claimed); per shard, the most. */
  consumers: number;
  /** The newest entry it was given (of any shard). */
  lastDeliveredId: string;
}

/** The outbox's limits, from `results` in the config. */
export type OutboxLimits = Pick<ResultsConfig, 'outboxMaxLen' | 'outboxMaxBytes'>;

/** Entries a trim call removes at most (it reads each one's size, kept beside it). */
const TRIM_STEP = 1_000;

/** Sink names are consumer group names and part of key names: one word. */
export function checkSinkName(name: string): string {
  if (!NAME_PATTERN.test(name))
    throw new InputError('invalid_sink_name', `a sink name is 1-64 of A-Z a-z 0-9 . _ -, got ${JSON.stringify(name)}`);
  return name;
}

/** What several shards' outboxes hold together (a shard not seen yet counts as empty). */
export function totalFill(fills: readonly (OutboxFill | undefined)[]): OutboxFill {
  let entries = 0;
  let bytes = 0;
  for (const fill of fills) {
    entries += fill?.entries ?? 0;
    bytes += fill?.bytes ?? 0;
  }
  return { entries, bytes };
}

/** True when `fill` is at or past either limit: workers hold back. */
export function isFull(fill: OutboxFill, limits: OutboxLimits): boolean {
  return fill.entries >= limits.outboxMaxLen || fill.bytes >= limits.outboxMaxBytes;
}

/**
 * The results stream as an outbox: every sink is a named consumer group that reads it from the
 * start, and the stream is trimmed only below what every sink has acknowledged
 * (`lua/trim-outbox.lua`). With no sink registered, nothing is trimmed. A fleet of several shards
 * has an outbox stream per shard: a sink is a group on each, and every answer here is over all.
 */
export class Outbox {
  private readonly redis: WithTrimScript;

  constructor(
    redis: RedisClient,
    private readonly keys: KeyLayout,
  ) {
    if (!('cfTrimOutbox' in redis)) redis.defineCommand('cfTrimOutbox', { numberOfKeys: 3, lua: TRIM_OUTBOX });
    this.redis = redis as WithTrimScript;
  }

  async fill(): Promise<OutboxFill> {
    return totalFill(await this.fills());
  }

  /** What each shard's outbox holds, in shard order. */
  fills(): Promise<OutboxFill[]> {
    return Promise.all(this.keys.shards.map((shard) => this.fillOf(shard)));
  }

  /** What one shard's outbox holds. */
  async fillOf(shard: ShardKeys): Promise<OutboxFill> {
    const [entries, bytes] = await Promise.all([this.redis.xlen(shard.results), this.redis.get(shard.resultsBytes)]);
    return { entries, bytes: Number(bytes ?? 0) };
  }

  /**
   * Registers a sink that has not been: it starts at the oldest entry the outbox holds. True
   * when this call created it.
   */
  async register(name: string): Promise<boolean> {
    checkSinkName(name);
    let created = false;
    for (const shard of this.keys.shards) {
      try {
        await this.redis.xgroup('CREATE', shard.results, name, '0', 'MKSTREAM');
        created = true;
      } catch (error) {
        if (!(error as Error).message.startsWith('BUSYGROUP')) throw error;
      }
    }
    return created;
  }

  /**
   * Forgets a sink (what it had not acknowledged is no longer kept for it) and trims what no
   * other sink needs. False when there was no such sink.
   */
  async remove(name: string): Promise<boolean> {
    let removed = false;
    for (const shard of this.keys.shards) {
      if ((await this.redis.exists(shard.results)) === 0) continue;
      // DESTROY answers 1 when the group was there.
      if (Number(await this.redis.xgroup('DESTROY', shard.results, name)) === 1) removed = true;
    }
    if (removed) await this.trim();
    return removed;
  }

  /** The registered sinks, by name. */
  async sinks(): Promise<SinkState[]> {
    const byName = new Map<string, SinkState>();
    for (const shard of this.keys.shards) {
      for (const sink of await this.sinksOf(shard)) {
        const seen = byName.get(sink.name);
        if (seen === undefined) {
          byName.set(sink.name, sink);
          continue;
        }
        seen.pending += sink.pending;
        seen.lag = seen.lag === null || sink.lag === null ? null : seen.lag + sink.lag;
        seen.consumers = Math.max(seen.consumers, sink.consumers);
        if (compareIds(sink.lastDeliveredId, seen.lastDeliveredId) > 0) seen.lastDeliveredId = sink.lastDeliveredId;
      }
    }
    return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** The sinks registered on one shard's stream. */
  private async sinksOf(shard: ShardKeys): Promise<SinkState[]> {
    if ((await this.redis.exists(shard.results)) === 0) return [];
    const groups = (await this.redis.xinfo('GROUPS', shard.results)) as unknown[][];
    return groups
      .map((group) => {
        const field = (name: string): unknown => group[group.indexOf(name) + 1];
        const lag = field('lag');
        return {
          name: String(field('name')),
          pending: Number(field('pending')),
          lag: lag === null || lag === undefined ? null : Number(lag),
          consumers: Number(field('consumers')),
          lastDeliveredId: String(field('last-delivered-id')),
        };
      })
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Trims everything every sink has acknowledged; answers what the outbox holds after. */
  trim(): Promise<OutboxFill & { trimmed: number }> {
    return this.trimBelow('');
  }

  /**
   * Removes the results written before `beforeMs` (ms since the epoch, the Redis server's clock),
   * whether or not sinks have them: `crawlfleet purge`.
   */
  purgeBefore(beforeMs: number): Promise<OutboxFill & { trimmed: number }> {
    return this.trimBelow(`${Math.max(0, Math.floor(beforeMs))}-0`);
  }

  private async trimBelow(below: string): Promise<OutboxFill & { trimmed: number }> {
    const total = { trimmed: 0, entries: 0, bytes: 0 };
    for (const shard of this.keys.shards) {
      const { trimmed, entries, bytes } = await this.trimShard(shard, below);
      total.trimmed += trimmed;
      total.entries += entries;
      total.bytes += bytes;
    }
    return total;
  }

  /** Trims one shard's stream below what each of its sinks acknowledged (and `below`, when given). */
  async trimShard(shard: ShardKeys, below = ''): Promise<OutboxFill & { trimmed: number }> {
    let trimmed = 0;
    for (;;) {
      const [removed, entries, bytes, more] = await this.redis.cfTrimOutbox(
        shard.results,
        shard.resultsBytes,
        shard.resultsSizes,
        TRIM_STEP,
        below,
      );
      trimmed += removed;
      if (more === 0) return { trimmed, entries, bytes };
    }
  }
}
