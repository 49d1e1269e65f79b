import { hostname } from 'node:os';
import type { BodyReader } from '@crawlfleet/bodies';
import type { KeyLayout, RedisClient, ShardKeys } from '@crawlfleet/core';
import { compareIds, Outbox, type OutboxFill, type OutboxItem, outboxEntry, totalFill } from '@crawlfleet/results';
import { isLocalProcessAlive } from './local-process.js';
import { resolveEntry } from './resolve-entry.js';
import type { SinkItem, SinkTarget } from './sink-target.js';

export interface OutboxConsumerOptions {
  /** Commands, acknowledgements and heartbeats. */
  redis: RedisClient;
  keys: KeyLayout;
  /** The sink's name: its consumer group. Every process of one sink shares it. */
  name: string;
  target: SinkTarget;
  bodies: BodyReader;
  /** This process within the sink; default `<hostname>:<pid>`, which lets a restart on the same host claim at once. */
  consumer?: string | undefined;
  /** Entries per batch (one target write, one acknowledgement). Default 500. */
  batchSize?: number | undefined;
  /** How long a read waits for new entries. Default 1 s. */
  blockMs?: number | undefined;
  /**
   * Drain what is there, then stop: this sink's entries up to the newest one when it started, and
   * what dead consumers held.
   */
  once?: boolean | undefined;
  /**
   * Which entries of a batch the target gets (a crawl's own `--out` takes only its keys). Default:
   * all. The others are acknowledged unwritten, unless `keepRejected`: then they stay pending
   * here and, while this sink is registered, in the outbox.
   */
  select?: ((entries: readonly OutboxEntry[]) => Promise<boolean[]>) | undefined;
  keepRejected?: boolean | undefined;
  /** Told after every acknowledged batch. */
  onBatch?: ((progress: SinkProgress) => void) | undefined;
  /** Told when a batch could not be written and will be tried again. */
  onRetry?: ((error: Error, attempt: number, delayMs: number) => void) | undefined;
  /** How long a consumer's heartbeat lasts; a consumer silent this long is dead. Default 15 s. */
  heartbeatTtlMs?: number | undefined;
}

export interface SinkProgress {
  /** Results written to the target since start. */
  written: number;
  /** Results acknowledged without writing (not accepted, or deleted from the outbox). */
  skipped: number;
  /** Entries taken over from consumers that died holding them. */
  claimed: number;
  /** The outbox after this batch's trim. */
  outbox: OutboxFill;
}

/** Tries of one batch before the consumer gives up (its entries stay pending for the next run). */
const WRITE_TRIES = 6;
const MAX_RETRY_DELAY_MS = 30_000;

type StreamEntry = [id: string, fields: string[] | null];

/** A result, or a handler's record, as the outbox holds it. */
export type OutboxEntry = OutboxItem;

/**
 * One process of a sink: reads the outbox through the sink's consumer group, hands batches to
 * the target, and acknowledges a batch only after the target made it durable, then trims what
 * every sink has. After a crash nothing is lost: its own pending entries are read again at start,
 * and entries held by a consumer that died (no heartbeat, or a dead pid on this host) are claimed.
 * A fleet of several shards has an outbox stream per shard: the consumer takes from each in turn.
 */
export class OutboxConsumer {
  private readonly outbox: Outbox;
  private readonly consumer: string;
  private readonly batchSize: number;
  private readonly heartbeatTtlMs: number;
  private readonly reader: RedisClient;
  private heartbeat: NodeJS.Timeout | undefined;
  private stopping = false;
  private draining = false;
  private readonly progress: SinkProgress = { written: 0, skipped: 0, claimed: 0, outbox: { entries: 0, bytes: 0 } };
  /** What each shard's outbox held after this consumer's latest trim of it. */
  private readonly fills: OutboxFill[] = [];

  constructor(private readonly options: OutboxConsumerOptions) {
    this.outbox = new Outbox(options.redis, options.keys);
    this.consumer = options.consumer ?? `${hostname()}:${process.pid}`;
    this.batchSize = options.batchSize ?? 500;
    this.heartbeatTtlMs = options.heartbeatTtlMs ?? 15_000;
    // A blocking read holds its connection: it gets its own, so heartbeats never wait behind it.
    this.reader = options.redis.duplicate();
  }

  /** What this consumer has done so far. */
  get done(): Readonly<SinkProgress> {
    return this.progress;
  }

  /** Finishes the batch in hand, acknowledges it, and makes `run` return. */
  stop(): void {
    this.stopping = true;
  }

  /** Makes `run` return once it has taken everything the outbox holds now (as `once` does). */
  drain(): void {
    this.draining = true;
  }

  /** Runs until `stop()`, or with `once` until the outbox holds nothing this sink has not taken. */
  async run(): Promise<SinkProgress> {
    const { redis, keys, name } = this.options;
    const shards = keys.shards;
    await this.outbox.register(name);
    await this.beat();
    this.heartbeat = setInterval(() => void this.beat().catch(() => undefined), this.heartbeatTtlMs / 3);
    this.heartbeat.unref();
    try {
      // What this consumer held when it last stopped (a restart under the same name) comes first;
      // reading on from the last one seen, since entries it keeps unacknowledged stay pending.
      for (const shard of shards) {
        for (let from = '0'; !this.stopping; ) {
          const own = await this.read(shard, from, 0);
          if (own.length === 0) break;
          await this.deliver(shard, own);
          from = own[own.length - 1]?.[0] ?? from;
        }
      }
      // A drain ends, on each shard, at the newest entry there is when it starts: later ones are the next run's.
      const ends = new Map<number, string>();
      const drained = new Set<number>();
      let lastClaimCheck = 0;
      while (!this.stopping) {
        const draining = this.options.once === true || this.draining;
        if (draining && ends.size === 0)
          for (const shard of shards) ends.set(shard.index, (await this.newestId(shard)) ?? '0-0');
        if (draining || Date.now() - lastClaimCheck >= this.heartbeatTtlMs / 3) {
          let claimedAny = false;
          for (const shard of shards) {
            const claimed = await this.claimDead(shard);
            if (claimed.length === 0) continue;
            claimedAny = true;
            this.progress.claimed += claimed.length;
            await this.deliver(shard, claimed);
          }
          if (claimedAny) continue;
          lastClaimCheck = Date.now();
        }
        // One shard: a blocking read waits for the next entry. Several: each is read at once in
        // turn (a cluster cannot block on streams of different slots), with a short pause when
        // none had anything.
        const blockMs = draining || shards.length > 1 ? 0 : (this.options.blockMs ?? 1_000);
        let read = 0;
        for (const shard of shards) {
          if (this.stopping) break;
          if (drained.has(shard.index)) continue;
          const fresh = await this.read(shard, '>', blockMs);
          read += fresh.length;
          if (fresh.length > 0) await this.deliver(shard, fresh);
          const last = fresh[fresh.length - 1]?.[0];
          const end = ends.get(shard.index);
          if (draining && end !== undefined && (last === undefined || compareIds(end, last) <= 0))
            drained.add(shard.index);
        }
        if (draining && drained.size === shards.length) break;
        if (read === 0 && blockMs === 0 && !draining)
          await new Promise((resolve) => setTimeout(resolve, Math.min(this.options.blockMs ?? 1_000, 100)));
      }
      return this.progress;
    } finally {
      clearInterval(this.heartbeat);
      await redis.del(keys.sinkConsumer(name, this.consumer)).catch(() => undefined);
      // A consumer that holds nothing leaves no trace in the group.
      for (const shard of shards) {
        const pending = await this.pendingOf(shard, this.consumer).catch(() => 1);
        if (pending === 0) await redis.xgroup('DELCONSUMER', shard.results, name, this.consumer).catch(() => undefined);
      }
      this.reader.disconnect();
    }
  }

  private async newestId(shard: ShardKeys): Promise<string | undefined> {
    const [newest] = await this.options.redis.xrevrange(shard.results, '+', '-', 'COUNT', 1);
    return newest?.[0];
  }

  private async beat(): Promise<void> {
    const { redis, keys, name } = this.options;
    await redis.set(keys.sinkConsumer(name, this.consumer), String(process.pid), 'PX', this.heartbeatTtlMs);
  }

  /** Entries after `from`: this consumer's pending ones after that id, or (`>`) never delivered ones. */
  private async read(shard: ShardKeys, from: string, blockMs: number): Promise<StreamEntry[]> {
    const { name } = this.options;
    const args: Array<string | number> = ['GROUP', name, this.consumer, 'COUNT', this.batchSize];
    if (blockMs > 0) args.push('BLOCK', blockMs);
    const answer = (await this.reader.call('XREADGROUP', ...args, 'STREAMS', shard.results, from)) as Array<
      [string, StreamEntry[]]
    > | null;
    return answer?.[0]?.[1] ?? [];
  }

  private async pendingOf(shard: ShardKeys, consumer: string): Promise<number> {
    const { redis, name } = this.options;
    const summary = (await redis.xpending(shard.results, name, '-', '+', 1, consumer)) as unknown[];
    return summary.length;
  }

  /**
   * Takes over the pending entries of one consumer that died: its heartbeat expired, or it ran
   * on this host and its process is gone. Dead consumers holding nothing are removed.
   */
  private async claimDead(shard: ShardKeys): Promise<StreamEntry[]> {
    const { redis, name } = this.options;
    const consumers = (await redis.xinfo('CONSUMERS', shard.results, name)) as unknown[][];
    for (const fields of consumers) {
      const consumer = String(fields[fields.indexOf('name') + 1]);
      if (consumer === this.consumer || !(await this.isDead(consumer))) continue;
      const pending = Number(fields[fields.indexOf('pending') + 1]);
      if (pending === 0) {
        await redis.xgroup('DELCONSUMER', shard.results, name, consumer);
        continue;
      }
      const held = (await redis.xpending(shard.results, name, '-', '+', this.batchSize, consumer)) as Array<
        [string, string, number, number]
      >;
      if (held.length === 0) continue;
      const claimed = (await redis.xclaim(
        shard.results,
        name,
        this.consumer,
        0,
        ...held.map(([id]) => id),
      )) as StreamEntry[];
      // Entries deleted from the stream are dropped from the pending list by XCLAIM itself.
      if (claimed.length > 0) return claimed;
    }
    return [];
  }

  private async isDead(consumer: string): Promise<boolean> {
    const { redis, keys, name } = this.options;
    const colon = consumer.lastIndexOf(':');
    if (colon > 0 && consumer.slice(0, colon) === hostname()) {
      const pid = Number(consumer.slice(colon + 1));
      if (Number.isInteger(pid) && pid > 0 && !isLocalProcessAlive(pid)) return true;
    }
    return (await redis.exists(keys.sinkConsumer(name, consumer))) === 0;
  }

  /** Writes a batch durably (retrying with backoff), then acknowledges it and trims. */
  private async deliver(shard: ShardKeys, batch: StreamEntry[]): Promise<void> {
    const { redis, name, select, bodies } = this.options;
    const read: OutboxEntry[] = [];
    const gone: string[] = [];
    for (const [entryId, fields] of batch) {
      const entry = fields === null ? undefined : outboxEntry(entryId, fields);
      // Deleted from the stream by hand: nothing to write, nothing to keep.
      if (entry === undefined) gone.push(entryId);
      else read.push(entry);
    }
    const chosen = select === undefined ? read.map(() => true) : await select(read);
    const entries: SinkItem[] = [];
    const done = [...gone];
    for (const [i, entry] of read.entries()) {
      const { entryId } = entry;
      if (chosen[i]) entries.push('record' in entry ? entry : await resolveEntry(entryId, entry.result, bodies));
      if (chosen[i] || !this.options.keepRejected) done.push(entryId);
    }
    if (entries.length > 0) await this.writeWithRetries(entries);
    if (done.length > 0) await redis.xack(shard.results, name, ...done);
    this.progress.written += entries.length;
    this.progress.skipped += batch.length - entries.length;
    const { entries: left, bytes } = await this.outbox.trimShard(shard);
    this.fills[shard.index] = { entries: left, bytes };
    this.progress.outbox = totalFill(this.fills);
    this.options.onBatch?.(this.progress);
  }

  private async writeWithRetries(entries: SinkItem[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.options.target.write(entries);
        return;
      } catch (error) {
        if (attempt >= WRITE_TRIES) throw error;
        const delayMs = Math.min(MAX_RETRY_DELAY_MS, 500 * 2 ** (attempt - 1));
        this.options.onRetry?.(error as Error, attempt, delayMs);
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    }
  }
}
