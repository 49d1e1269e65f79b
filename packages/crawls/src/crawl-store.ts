import { readFileSync } from 'node:fs';
import {
  awaitReplicas,
  CRAWL_QUEUE,
  type CrawlDefinition,
  InputError,
  type KeyLayout,
  NAME_PATTERN,
  parseCrawlDefinition,
  RENDER_QUEUE,
  type RedisClient,
  type ShardKeys,
} from '@crawlfleet/core';

const START_CRAWL = readFileSync(new URL('../lua/start-crawl.lua', import.meta.url), 'utf8');
const ADMIT_LINKS = readFileSync(new URL('../lua/admit-links.lua', import.meta.url), 'utf8');
const FORGET_RECEIPTS = readFileSync(new URL('../lua/forget-receipts.lua', import.meta.url), 'utf8');

/**
 * How long a forgotten receipt is still answered: far longer than a frontier entry waits before
 * another mover may claim it (`CLAIM_IDLE_MS`, 30 s), so a mover that claimed an entry just before
 * its first mover acknowledged it gets the same links, not a second admission.
 */
const RECEIPT_GRACE_MS = 10 * 60_000;

/** How long a mover waits for a replica to hold its admissions before it enqueues their links. */
const ADMISSION_REPLICA_WAIT_MS = 1_000;

type WithCrawlScripts = RedisClient & {
  cfStartCrawl(numKeys: number, ...args: Array<string | number>): Promise<[number, string, number]>;
  cfAdmitLinks(numKeys: number, ...args: Array<string | number>): Promise<string>;
  cfForgetReceipts(numKeys: number, ...args: Array<string | number>): Promise<number>;
};

/**
 * Admits a page's links to its crawl where its result write could not (more than one shard):
 * `admit` answers the places (from 0) of the links admitted, the same again for the same
 * `receipt`; `forget` lets the receipts go once those links are enqueued and their entries
 * acknowledged (after `RECEIPT_GRACE_MS`).
 */
export interface LinkAdmission {
  admit(crawl: string, receipt: string, maxPages: number, keys: readonly string[]): Promise<number[]>;
  forget(receipts: ReadonlyArray<{ crawl: string; receipt: string }>): Promise<void>;
  /**
   * Waits (a bounded while) until a replica of the fleet tag's master holds the admissions made
   * so far, so a failover right after cannot lose admissions whose links are enqueued.
   */
  replicate(): Promise<void>;
}

/** Whether a crawl fetches: `running`, `paused` (its jobs wait), `cancelled` (its jobs end). */
export type CrawlState = 'running' | 'paused' | 'cancelled';

/** A crawl as stored: its definition, state and fleet-wide counts. */
export interface CrawlStatus {
  definition: CrawlDefinition;
  state: CrawlState;
  /** URLs admitted to its frontier (seeds and followed links), each once. */
  discovered: number;
  /** Pages whose result was written. */
  stored: number;
  /** Pages that went to the dead-letter queue. */
  deadLettered: number;
  /** Records its handler pushed, written with their pages. */
  records: number;
  /** Jobs that ended unfetched because the crawl was cancelled. */
  cancelled: number;
  /** Stored pages whose links are not admitted yet (more than one shard: a mover admits them). */
  admitting: number;
  /** Pages stored in the last minute, across the fleet. */
  lastMinute: number;
}

/** The ring of per-10 s page counts the result write keeps in a crawl's hash (`r<slot>`, `t<slot>`). */
const RATE_SLOTS = 18;
const RATE_SPAN_MS = 10_000;
const RATE_FIELDS = Array.from({ length: RATE_SLOTS }, (_, i) => [`r${i}`, `t${i}`]).flat();

/** What must match for a submit to extend a crawl: its scope. */
function scopeOf(definition: CrawlDefinition): string {
  const { follow, include, exclude, maxDepth, maxPages, tenant, sessionId } = definition;
  return JSON.stringify({ tenant, sessionId, follow, include, exclude, maxDepth, maxPages });
}

/**
 * A crawl's work not yet ended: URLs admitted and not yet stored, dead-lettered or dropped by a
 * cancel, and stored pages whose links are still to be admitted.
 */
export function pendingOf(status: CrawlStatus): number {
  return Math.max(0, status.discovered - status.stored - status.deadLettered - status.cancelled) + status.admitting;
}

/** Checks a crawl name given on the command line. */
export function checkCrawlName(name: string): string {
  if (!NAME_PATTERN.test(name))
    throw new InputError('invalid_crawl', `--crawl must be 1-64 of A-Z a-z 0-9 . _ -, got ${JSON.stringify(name)}`);
  return name;
}

/**
 * Named crawls in Redis (`{prefix}:crawls:<name>`, a hash on the fleet tag): the definition the
 * first submit stored, the state people steer, and the counts the result write (stored, links
 * discovered) and the DLQ move (dead-lettered) keep. A crawl's seen set holds each idempotency
 * key it admitted once, so a URL found by many pages, on many workers, enters its frontier once.
 * With more than one shard, each shard keeps the crawl's stored pages and records beside its
 * outbox (`ShardKeys.crawlCounts`), and links are admitted by the frontier movers (`admit`).
 */
export class CrawlStore implements LinkAdmission {
  private readonly redis: WithCrawlScripts;

  /** `receiptGraceMs`: how long a forgotten receipt is still answered (`RECEIPT_GRACE_MS`; tests shorten it). */
  constructor(
    redis: RedisClient,
    private readonly keys: KeyLayout,
    private readonly receiptGraceMs: number = RECEIPT_GRACE_MS,
  ) {
    if (!('cfStartCrawl' in redis)) redis.defineCommand('cfStartCrawl', { lua: START_CRAWL });
    if (!('cfAdmitLinks' in redis)) redis.defineCommand('cfAdmitLinks', { lua: ADMIT_LINKS });
    if (!('cfForgetReceipts' in redis)) redis.defineCommand('cfForgetReceipts', { lua: FORGET_RECEIPTS });
    this.redis = redis as WithCrawlScripts;
  }

  async admit(crawl: string, receipt: string, maxPages: number, keys: readonly string[]): Promise<number[]> {
    const answer = await this.redis.cfAdmitLinks(
      3,
      this.keys.crawl(crawl),
      this.keys.crawlSeen(crawl),
      this.keys.crawlReceipts(crawl),
      receipt,
      maxPages,
      ...keys,
    );
    return answer === '' ? [] : answer.split(',').map((place) => Number(place) - 1);
  }

  async replicate(): Promise<void> {
    await awaitReplicas(this.redis, ADMISSION_REPLICA_WAIT_MS, this.keys.crawls);
  }

  async forget(receipts: ReadonlyArray<{ crawl: string; receipt: string }>): Promise<void> {
    const byCrawl = new Map<string, string[]>();
    for (const { crawl, receipt } of receipts) {
      const list = byCrawl.get(crawl);
      if (list === undefined) byCrawl.set(crawl, [receipt]);
      else list.push(receipt);
    }
    // Every crawl's receipts are on the fleet tag: one slot.
    await Promise.all(
      [...byCrawl].map(([crawl, list]) =>
        this.redis.cfForgetReceipts(
          2,
          this.keys.crawlReceipts(crawl),
          this.keys.crawlForgotten(crawl),
          this.receiptGraceMs,
          ...list,
        ),
      ),
    );
  }

  /**
   * Starts a crawl, or extends the one of that name, with these seeds (their idempotency keys).
   * `scoped`: the caller gave scope options, which must then be the stored crawl's. Returns the
   * definition that stands; a different scope or a cancelled crawl is refused (`InputError`).
   */
  async start(
    definition: CrawlDefinition,
    seedKeys: readonly string[],
    scoped: boolean,
  ): Promise<{ started: boolean; definition: CrawlDefinition; newSeeds: number }> {
    const [status, stored, newSeeds] = await this.redis.cfStartCrawl(
      3,
      this.keys.crawls,
      this.keys.crawl(definition.name),
      this.keys.crawlSeen(definition.name),
      definition.name,
      JSON.stringify(definition),
      scopeOf(definition),
      scoped ? '1' : '0',
      Date.now(),
      ...seedKeys,
    );
    const standing = parseCrawlDefinition(JSON.parse(stored));
    if (status === -1)
      throw new InputError(
        'crawl_scope_differs',
        `crawl ${definition.name} exists with another scope (${describeScope(standing)}): leave out the scope options to extend it, or name a new crawl`,
      );
    if (status === -2)
      throw new InputError('crawl_cancelled', `crawl ${definition.name} was cancelled: name a new crawl`);
    return { started: status === 1, definition: standing, newSeeds };
  }

  /** The crawl's definition, or undefined when there is no crawl of that name. */
  async definition(name: string): Promise<CrawlDefinition | undefined> {
    const stored = await this.redis.hget(this.keys.crawl(name), 'definition');
    return stored === null ? undefined : parseCrawlDefinition(JSON.parse(stored));
  }

  /** The crawl's definition, state and counts; undefined when there is none. */
  async status(name: string): Promise<CrawlStatus | undefined> {
    // The pages each shard stored are counted beside its outbox; with one shard, in the crawl's hash.
    const [[definition, state, discovered, dead, cancelled, admissions], ...shards] = await Promise.all([
      this.redis.hmget(this.keys.crawl(name), 'definition', 'state', 'discovered', 'dead', 'cancelled', 'admissions'),
      ...this.keys.shards.map((shard) =>
        this.redis.hmget(shard.crawlCounts(name), 'stored', 'records', 'forwarded', ...RATE_FIELDS),
      ),
    ]);
    if (definition === null || definition === undefined) return undefined;
    // The six newest spans: the one under way and the five before it.
    const now = Math.floor(Date.now() / RATE_SPAN_MS);
    let stored = 0;
    let records = 0;
    let lastMinute = 0;
    let forwarded = 0;
    for (const [storedHere, recordsHere, forwardedHere, ...ring] of shards) {
      stored += Number(storedHere ?? 0);
      records += Number(recordsHere ?? 0);
      forwarded += Number(forwardedHere ?? 0);
      for (let slot = 0; slot < RATE_SLOTS; slot++) {
        const span = Number(ring[slot * 2 + 1] ?? Number.NaN);
        if (span > now - 6 && span <= now) lastMinute += Number(ring[slot * 2] ?? 0);
      }
    }
    return {
      definition: parseCrawlDefinition(JSON.parse(definition)),
      state: (state ?? 'running') as CrawlState,
      discovered: Number(discovered ?? 0),
      stored,
      deadLettered: Number(dead ?? 0),
      records,
      cancelled: Number(cancelled ?? 0),
      admitting: Math.max(0, forwarded - Number(admissions ?? 0)),
      lastMinute,
    };
  }

  /** The names of every crawl, oldest first. */
  names(): Promise<string[]> {
    return this.redis.zrange(this.keys.crawls, 0, -1);
  }

  /** A crawl's state; a crawl that is not there (purged) counts as cancelled. */
  async state(name: string): Promise<CrawlState> {
    return (await this.states([name]))[0] ?? 'cancelled';
  }

  /** The states of several crawls, in one round trip; a crawl that is not there counts as cancelled. */
  async states(names: readonly string[]): Promise<CrawlState[]> {
    if (names.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const name of names) pipeline.hget(this.keys.crawl(name), 'state');
    const answers = (await pipeline.exec()) ?? [];
    return names.map((_, i) => {
      const [error, state] = answers[i] ?? [];
      if (error) throw error;
      return (state ?? 'cancelled') as CrawlState;
    });
  }

  /**
   * Pauses, resumes or cancels a crawl; answers the state it was in. Cancelling is final: a
   * cancelled crawl is not resumed (its frontier took no more links). Unknown crawls are refused.
   */
  async steer(name: string, to: CrawlState): Promise<CrawlState> {
    const [definition, state] = await this.redis.hmget(this.keys.crawl(name), 'definition', 'state');
    if (definition === null || definition === undefined)
      throw new InputError('unknown_crawl', `no crawl named ${name} (see crawlfleet crawls list)`);
    const from = (state ?? 'running') as CrawlState;
    if (from === 'cancelled' && to !== 'cancelled')
      throw new InputError('crawl_cancelled', `crawl ${name} was cancelled and cannot run again: name a new crawl`);
    await this.redis.hset(this.keys.crawl(name), 'state', to);
    return from;
  }

  /**
   * The crawl's jobs running now, fleet-wide: the active jobs of the crawl and render queues
   * (bounded by the fleet's concurrency) read in one pipeline, counted by the crawl their data names.
   */
  async inFlight(name: string): Promise<number> {
    const counts = await Promise.all(this.keys.shards.map((shard) => this.inFlightOn(shard, name)));
    return counts.reduce((total, count) => total + count, 0);
  }

  /** The crawl's jobs running now on one shard's queues (one slot: one pipeline). */
  private async inFlightOn(shard: ShardKeys, name: string): Promise<number> {
    const [http, render] = await Promise.all([
      this.redis.lrange(`${shard.bullPrefix}:${CRAWL_QUEUE}:active`, 0, 9_999),
      this.redis.lrange(`${shard.bullPrefix}:${RENDER_QUEUE}:active`, 0, 9_999),
    ]);
    if (http.length + render.length === 0) return 0;
    const pipeline = this.redis.pipeline();
    for (const id of http) pipeline.hget(`${shard.bullPrefix}:${CRAWL_QUEUE}:${id}`, 'data');
    for (const id of render) pipeline.hget(`${shard.bullPrefix}:${RENDER_QUEUE}:${id}`, 'data');
    let running = 0;
    for (const [, data] of (await pipeline.exec()) ?? []) {
      if (typeof data !== 'string') continue;
      try {
        if ((JSON.parse(data) as { crawl?: { name?: string } }).crawl?.name === name) running++;
      } catch {
        // Not a job this version wrote: not the crawl's.
      }
    }
    return running;
  }

  /** Counts a page of the crawl that went to the dead-letter queue. */
  async countDeadLettered(name: string): Promise<void> {
    await this.redis.hincrby(this.keys.crawl(name), 'dead', 1);
  }

  /** Counts a job of the crawl that ended unfetched because the crawl was cancelled. */
  async countCancelled(name: string): Promise<void> {
    await this.redis.hincrby(this.keys.crawl(name), 'cancelled', 1);
  }
}

/** `follow same-hostname, depth 3, 50 pages`: a scope in a few words. */
export function describeScope(definition: CrawlDefinition): string {
  const parts = [`follow ${definition.follow}`];
  if (definition.maxDepth !== undefined) parts.push(`depth ${definition.maxDepth}`);
  if (definition.maxPages !== undefined) parts.push(`${definition.maxPages} pages`);
  if (definition.include.length > 0) parts.push(`include ${definition.include.join(' ')}`);
  if (definition.exclude.length > 0) parts.push(`exclude ${definition.exclude.join(' ')}`);
  return parts.join(', ');
}
