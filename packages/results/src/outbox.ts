import { readFileSync } from 'node:fs';
import { InputError, type KeyLayout, NAME_PATTERN, type RedisClient, type ResultsConfig } from '@crawlfleet/core';

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
  /** Its consumers (running or dead ones whose pending entries wait to be claimed). */
  consumers: number;
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

/** True when `fill` is at or past either limit: workers hold back. */
export function isFull(fill: OutboxFill, limits: OutboxLimits): boolean {
  return fill.entries >= limits.outboxMaxLen || fill.bytes >= limits.outboxMaxBytes;
}

/**
 * The results stream as an outbox: every sink is a named consumer group that reads it from the
 * start, and the stream is trimmed only below what every sink has acknowledged
 * (`lua/trim-outbox.lua`). With no sink registered, nothing is trimmed.
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
    const [entries, bytes] = await Promise.all([
      this.redis.xlen(this.keys.results),
      this.redis.get(this.keys.resultsBytes),
    ]);
    return { entries, bytes: Number(bytes ?? 0) };
  }

  /**
   * Registers a sink that has not been: it starts at the oldest entry the outbox holds. True
   * when this call created it.
   */
  async register(name: string): Promise<boolean> {
    try {
      await this.redis.xgroup('CREATE', this.keys.results, checkSinkName(name), '0', 'MKSTREAM');
      return true;
    } catch (error) {
      if ((error as Error).message.startsWith('BUSYGROUP')) return false;
      throw error;
    }
  }

  /**
   * Forgets a sink (what it had not acknowledged is no longer kept for it) and trims what no
   * other sink needs. False when there was no such sink.
   */
  async remove(name: string): Promise<boolean> {
    if ((await this.redis.exists(this.keys.results)) === 0) return false;
    // DESTROY answers 1 when the group was there.
    if (Number(await this.redis.xgroup('DESTROY', this.keys.results, name)) !== 1) return false;
    await this.trim();
    return true;
  }

  /** The registered sinks, by name. */
  async sinks(): Promise<SinkState[]> {
    if ((await this.redis.exists(this.keys.results)) === 0) return [];
    const groups = (await this.redis.xinfo('GROUPS', this.keys.results)) as unknown[][];
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
    let trimmed = 0;
    for (;;) {
      const [removed, entries, bytes, more] = await this.redis.cfTrimOutbox(
        this.keys.results,
        this.keys.resultsBytes,
        this.keys.resultsSizes,
        TRIM_STEP,
        below,
      );
      trimmed += removed;
      if (more === 0) return { trimmed, entries, bytes };
    }
  }
}
