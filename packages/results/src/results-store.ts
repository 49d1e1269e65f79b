import { readFileSync } from 'node:fs';
import { type KeyLayout, type LinksToAdmit, type RedisClient, type ShardKeys, TurnBatch } from '@crawlfleet/core';
import { mergeByEntryId } from './merge-entries.js';
import type { OutboxFill } from './outbox.js';
import { type PendingResult, resultCalls } from './result-batches.js';
import type { StoredRecord } from './stored-record.js';
import type { StoredResult } from './stored-result.js';

const WRITE_RESULTS = readFileSync(new URL('../lua/write-results.lua', import.meta.url), 'utf8');
const COUNT_ENTRIES = readFileSync(new URL('../lua/count-entries.lua', import.meta.url), 'utf8');

type WithResultScripts = RedisClient & {
  cfWriteResults(numKeys: number, ...keysAndArgs: Array<string | number>): Promise<Array<number | string>>;
  cfCountEntries(stream: string, newest: string, oldest: string, count: number): Promise<[number, string]>;
};

/**
 * Where the job path writes a result: exactly once per idempotency key (a second write of a key
 * writes nothing and answers the first entry), with the key's ledger mark in the same step.
 */
export interface ResultSink {
  /** With `frontier`, a crawl's page: the crawl is counted and its links admitted in the same step. */
  write(result: StoredResult, frontier?: FrontierWrite): Promise<WriteOutcome>;
  /** Whether the key's result was written already (a retried or replayed job). */
  isFinished(idempotencyKey: string): Promise<boolean>;
}

/**
 * What a crawl's page adds to its crawl with its result: the crawl counts it as stored and admits
 * the links it follows to its frontier, each key once per crawl and no more than `maxPages` in
 * all (0: no limit). Nothing of it happens when the result was written before.
 */
export interface FrontierWrite {
  crawl: string;
  maxPages: number;
  /** Each link's idempotency key and its job (JSON). */
  links: Array<{ key: string; job: string }>;
  /** Records the page's handler pushed (`StoredRecord`, JSON), written beside its result. */
  records?: string[] | undefined;
}

export interface WriteOutcome {
  /** False when the key was already finished and nothing was written. */
  written: boolean;
  /** Links this write admitted to the frontier (for the mover to enqueue). */
  admitted: number;
  /** The stream entry of this result, or of the earlier one. */
  entryId: string;
}

/** A page's result as the outbox holds it. */
export interface ResultEntry {
  entryId: string;
  result: StoredResult;
}

/** A record a crawl's handler pushed, as the outbox holds it. */
export interface RecordEntry {
  entryId: string;
  record: StoredRecord;
}

/** What the outbox holds: pages' results and handlers' records. */
export type OutboxItem = ResultEntry | RecordEntry;

/** An entry of the outbox stream as XRANGE gives it, read by its field: `r` a result, `d` a record. */
export function outboxEntry(entryId: string, fields: readonly string[]): OutboxItem | undefined {
  const [field, json] = fields;
  if (json === undefined) return undefined;
  return field === 'd'
    ? { entryId, record: JSON.parse(json) as StoredRecord }
    : { entryId, result: JSON.parse(json) as StoredResult };
}

export interface CountRecentOptions {
  /** The end of the window, in ms since the epoch. Default: the Redis server's clock, which dates the entries. */
  now?: number | undefined;
  /**
   * Entries counted one by one at most. Past this, the count is worked out from the pace of the
   * newest ones, so a busy fleet's minute (tens of thousands of bodies) is never read. Default 2,000.
   */
  maxCounted?: number | undefined;
  /** Entries per script call; each call holds Redis while it reads their bodies. Default 200. */
  pageSize?: number | undefined;
}

export interface RecentCount {
  count: number;
  /** True when there were more than `maxCounted` and `count` is extrapolated from the newest. */
  estimated: boolean;
}

const DEFAULT_MAX_COUNTED = 2_000;
/** The span the write pace is counted in (`KeyLayout.resultsRate`). */
const RATE_SPAN_MS = 10_000;

export interface ResultsStoreOptions {
  /** How long a finished idempotency key is remembered (`retention.ledgerTtlSeconds`). */
  ledgerTtlSeconds: number;
  /** Told what a shard's outbox holds after each write to it (backpressure). */
  onFill?: ((fill: OutboxFill, shard: number) => void) | undefined;
}

/**
 * The results outbox and the idempotency ledger. A result and its ledger mark are written by one
 * Lua script (`lua/write-results.lua`), so there is no moment where one exists without the other;
 * the results written in one turn of the event loop share that script's call (`TurnBatch`), one
 * per shard (a result goes to its key's shard, with its ledger mark). Writing never trims: sinks
 * acknowledge and trim (`Outbox`). Reads and counts cover every shard.
 */
export class ResultsStore implements ResultSink {
  private readonly redis: WithResultScripts;
  private readonly batches: ReadonlyArray<TurnBatch<PendingResult, WriteOutcome>>;

  constructor(
    redis: RedisClient,
    private readonly keys: KeyLayout,
    private readonly options: ResultsStoreOptions,
  ) {
    if (!('cfWriteResults' in redis)) redis.defineCommand('cfWriteResults', { lua: WRITE_RESULTS });
    if (!('cfCountEntries' in redis)) redis.defineCommand('cfCountEntries', { numberOfKeys: 1, lua: COUNT_ENTRIES });
    this.redis = redis as WithResultScripts;
    this.batches = keys.shards.map((shard) => new TurnBatch((batch) => this.writeAll(shard, batch), resultCalls));
  }

  /**
   * Writes the result unless its idempotency key is already finished. One command, shared with
   * the other results written in the same turn of the event loop.
   */
  write(result: StoredResult, frontier?: FrontierWrite): Promise<WriteOutcome> {
    const shard = this.keys.shardOf(result.idempotencyKey);
    return (this.batches[shard.index] as TurnBatch<PendingResult, WriteOutcome>).add({
      ledgerKey: this.keys.ledger(result.idempotencyKey),
      json: JSON.stringify(result),
      ...(frontier === undefined ? {} : this.crawlPart(shard, frontier)),
    });
  }

  /**
   * A crawl page's part of its result write. With one shard the script admits the links itself
   * (the crawl's seen set shares the shard's slot); with more, they go to the shard's frontier
   * as one entry to admit (`LinksToAdmit`), and the crawl's counts of this shard are kept here.
   */
  private crawlPart(shard: ShardKeys, frontier: FrontierWrite): Pick<PendingResult, 'crawlKey' | 'seenKey' | 'links'> {
    const links = frontier.links.map(({ key, job }): [string, string] => [key, job]);
    const sharded = this.keys.shards.length > 1;
    const forward: LinksToAdmit = { crawl: frontier.crawl, maxPages: frontier.maxPages, links };
    return {
      crawlKey: shard.crawlCounts(frontier.crawl),
      seenKey: sharded ? shard.crawlCounts(frontier.crawl) : this.keys.crawlSeen(frontier.crawl),
      links: JSON.stringify({
        max: frontier.maxPages,
        span: Math.floor(Date.now() / RATE_SPAN_MS),
        links: sharded ? [] : links,
        records: frontier.records ?? [],
        ...(sharded && links.length > 0 ? { forward: JSON.stringify(forward), forwarded: links.length } : {}),
      }),
    };
  }

  private async writeAll(shard: ShardKeys, batch: readonly PendingResult[]): Promise<WriteOutcome[]> {
    // A result of no crawl names its ledger key in the crawl's places; its crawl part is empty.
    const answer = await this.redis.cfWriteResults(
      batch.length * 3 + 5,
      shard.results,
      shard.resultsBytes,
      shard.resultsSizes,
      shard.resultsRate(Math.floor(Date.now() / RATE_SPAN_MS)),
      shard.frontier,
      ...batch.flatMap((pending) => [
        pending.ledgerKey,
        pending.crawlKey ?? pending.ledgerKey,
        pending.seenKey ?? pending.ledgerKey,
      ]),
      this.options.ledgerTtlSeconds,
      ...batch.flatMap((pending) => [pending.json, pending.links ?? '']),
    );
    const n = batch.length;
    this.options.onFill?.({ entries: Number(answer[n * 3]), bytes: Number(answer[n * 3 + 1]) }, shard.index);
    return batch.map((_, i) => ({
      written: answer[i * 3] === 1,
      entryId: String(answer[i * 3 + 1]),
      admitted: Number(answer[i * 3 + 2]),
    }));
  }

  async isFinished(idempotencyKey: string): Promise<boolean> {
    return (await this.redis.exists(this.keys.ledger(idempotencyKey))) === 1;
  }

  /** Entries the outbox holds now: what some sink has not acknowledged, or every one with no sink. */
  async count(): Promise<number> {
    return sum(await Promise.all(this.keys.shards.map((shard) => this.redis.xlen(shard.results))));
  }

  /**
   * Results ever written to the stream, trimmed ones included (its `entries-added`). Undefined on
   * a Redis older than 7, which does not keep that count.
   */
  async written(): Promise<number | undefined> {
    let total = 0;
    for (const shard of this.keys.shards) {
      const info = await this.streamInfo(shard);
      if (info === undefined) continue;
      const added = info.get('entries-added');
      if (added === undefined) return undefined;
      total += Number(added);
    }
    return total;
  }

  /** A shard's stream's `XINFO STREAM` fields; undefined when it does not exist. */
  private async streamInfo(shard: ShardKeys): Promise<Map<string, unknown> | undefined> {
    if ((await this.redis.exists(shard.results)) === 0) return undefined;
    const info = (await this.redis.xinfo('STREAM', shard.results)) as unknown[];
    const fields = new Map<string, unknown>();
    for (let i = 0; i + 1 < info.length; i += 2) fields.set(String(info[i]), info[i + 1]);
    return fields;
  }

  /**
   * Results written in the last `windowMs`. Entry ids are the milliseconds they were written at,
   * so this counts ids from `now - windowMs` on, newest first, inside Redis (no body is sent).
   */
  async countRecent(windowMs: number, options: CountRecentOptions = {}): Promise<RecentCount> {
    const now = options.now ?? (await this.serverNow());
    const counts = await Promise.all(
      this.keys.shards.map((shard) => this.countRecentOf(shard, windowMs, { ...options, now })),
    );
    return { count: sum(counts.map((c) => c.count)), estimated: counts.some((c) => c.estimated) };
  }

  private async countRecentOf(shard: ShardKeys, windowMs: number, options: CountRecentOptions & { now: number }) {
    const now = options.now;
    const maxCounted = options.maxCounted ?? DEFAULT_MAX_COUNTED;
    const pageSize = options.pageSize ?? 200;
    const oldest = `${now - windowMs}-0`;
    let counted = 0;
    let newest = '+';
    // One entry past the limit tells a window of exactly `maxCounted` from a fuller one.
    while (counted <= maxCounted) {
      const wanted = Math.min(pageSize, maxCounted + 1 - counted);
      const [found, oldestFound] = await this.redis.cfCountEntries(shard.results, newest, oldest, wanted);
      counted += found;
      if (found < wanted) return { count: counted, estimated: false };
      newest = `(${oldestFound}`;
    }
    const spanMs = Math.max(1, now - Number.parseInt(newest.slice(1), 10));
    return { count: Math.round((counted * windowMs) / spanMs), estimated: true };
  }

  /**
   * Results written in the last `windowMs` (up to 3 minutes), a count that sinks emptying the
   * outbox do not lower. From the outbox's entries (`countRecent`) while it holds the whole window
   * (nothing was ever trimmed, or its first entry is older); else from the counts kept per 10 s,
   * the oldest span weighted by how much of it the window covers.
   */
  async countWritten(windowMs: number, options: CountRecentOptions = {}): Promise<RecentCount> {
    const now = options.now ?? (await this.serverNow());
    const counts = await Promise.all(
      this.keys.shards.map((shard) => this.countWrittenOf(shard, windowMs, { ...options, now })),
    );
    return { count: sum(counts.map((c) => c.count)), estimated: counts.some((c) => c.estimated) };
  }

  private async countWrittenOf(
    shard: ShardKeys,
    windowMs: number,
    options: CountRecentOptions & { now: number },
  ): Promise<RecentCount> {
    const now = options.now;
    if (!(await this.trimmedSince(shard, now - windowMs))) return this.countRecentOf(shard, windowMs, options);
    const from = now - windowMs;
    const first = Math.floor(from / RATE_SPAN_MS);
    const last = Math.floor(now / RATE_SPAN_MS);
    const spans = Array.from({ length: last - first + 1 }, (_, i) => first + i);
    const counts = await this.redis.mget(...spans.map((span) => shard.resultsRate(span)));
    let count = 0;
    for (const [i, span] of spans.entries()) {
      const covered = Math.min(1, ((span + 1) * RATE_SPAN_MS - from) / RATE_SPAN_MS);
      count += Number(counts[i] ?? 0) * (span === first ? covered : 1);
    }
    return { count: Math.round(count), estimated: true };
  }

  /**
   * Whether entries written from `sinceMs` on may have left the outbox: some were removed
   * (`entries-added` exceeds its length) and what it holds starts after `sinceMs`. Trimming only
   * ever removes the oldest, so otherwise it holds every entry since then. False on a Redis
   * older than 7, which does not count.
   */
  private async trimmedSince(shard: ShardKeys, sinceMs: number): Promise<boolean> {
    const info = await this.streamInfo(shard);
    const added = info?.get('entries-added');
    const length = Number(info?.get('length'));
    if (added === undefined || Number(added) === length) return false;
    if (length === 0) return true;
    return Number.parseInt(String(info?.get('recorded-first-entry-id')), 10) >= sinceMs;
  }

  /** The Redis server's clock, in ms since the epoch: what dates the results' entries. */
  async serverNow(): Promise<number> {
    const [seconds, micros] = await this.redis.time();
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  }

  /**
   * Every stored result, oldest first, read in pages so memory stays flat on any size; with
   * `sinceMs` (ms since the epoch, on the Redis server's clock, which dates the entries), those
   * written from then on.
   */
  entries(options?: { sinceMs?: number | undefined; pageSize?: number }): AsyncGenerator<ResultEntry>;
  entries(options: { sinceMs?: number | undefined; pageSize?: number; records: true }): AsyncGenerator<OutboxItem>;
  async *entries(
    options: { sinceMs?: number | undefined; pageSize?: number; records?: boolean } = {},
  ): AsyncGenerator<OutboxItem> {
    // Each shard's entries are in time order; merged by entry id, so are all of them.
    yield* mergeByEntryId(this.keys.shards.map((shard) => this.entriesOf(shard, options)));
  }

  private async *entriesOf(
    shard: ShardKeys,
    options: { sinceMs?: number | undefined; pageSize?: number; records?: boolean },
  ): AsyncGenerator<OutboxItem> {
    const pageSize = options.pageSize ?? 500;
    let start = options.sinceMs === undefined ? '-' : `${Math.max(0, Math.floor(options.sinceMs))}-0`;
    for (;;) {
      const page = await this.redis.xrange(shard.results, start, '+', 'COUNT', pageSize);
      for (const [entryId, fields] of page) {
        const entry = outboxEntry(entryId, fields);
        if (entry !== undefined && (options.records === true || 'result' in entry)) yield entry;
      }
      if (page.length < pageSize) return;
      start = `(${page[page.length - 1]?.[0]}`;
    }
  }
}

function sum(values: readonly number[]): number {
  return values.reduce((total, value) => total + value, 0);
}
