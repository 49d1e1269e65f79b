import { readFileSync } from 'node:fs';
import {
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

type WithCrawlScripts = RedisClient & {
  cfStartCrawl(numKeys: number, ...args: Array<string | number>): Promise<[number, string, number]>;
};

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

/** A crawl's URLs admitted and not yet ended: stored, dead-lettered, or dropped by a cancel. */
export function pendingOf(status: CrawlStatus): number {
  return Math.max(0, status.discovered - status.stored - status.deadLettered - status.cancelled);
}

/** Checks a crawl name given on the command line. */
export function checkCrawlName(name: string): string {
  if (!NAME_PATTERN.test(name))
    throw new InputError('invalid_crawl', `--crawl must be 1-64 of A-Z a-z 0-9 . _ -, got ${JSON.stringify(name)}`);
  return name;
}

/**
 * Named crawls in Redis (`{prefix}:crawls:<name>`, a hash): the definition the first submit
 * stored, the state people steer, and the counts the result write (stored, links discovered) and
 * the DLQ move (dead-lettered) keep. A crawl's seen set holds each idempotency key it admitted
 * once, so a URL found by many pages, on many workers, enters its frontier once.
 */
export class CrawlStore {
  private readonly redis: WithCrawlScripts;

  constructor(
    redis: RedisClient,
    private readonly keys: KeyLayout,
  ) {
    if (!('cfStartCrawl' in redis)) redis.defineCommand('cfStartCrawl', { lua: START_CRAWL });
    this.redis = redis as WithCrawlScripts;
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
    // A page's result write counts it for its crawl and admits its links in one script, over its
    // shard's outbox and the crawl's keys (on the fleet tag): one slot only while there is one shard.
    if (this.keys.shards.length > 1)
      throw new InputError(
        'crawls_need_one_shard',
        `named crawls (--crawl NAME) run on a fleet of one shard for now; this config has queue.shards ${this.keys.shards.length}`,
      );
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
    const [definition, state, discovered, stored, dead, records, cancelled, ...ring] = await this.redis.hmget(
      this.keys.crawl(name),
      'definition',
      'state',
      'discovered',
      'stored',
      'dead',
      'records',
      'cancelled',
      ...RATE_FIELDS,
    );
    // The six newest spans: the one under way and the five before it.
    const now = Math.floor(Date.now() / RATE_SPAN_MS);
    let lastMinute = 0;
    for (let slot = 0; slot < RATE_SLOTS; slot++) {
      const span = Number(ring[slot * 2 + 1] ?? Number.NaN);
      if (span > now - 6 && span <= now) lastMinute += Number(ring[slot * 2] ?? 0);
    }
    if (definition === null || definition === undefined) return undefined;
    return {
      definition: parseCrawlDefinition(JSON.parse(definition)),
      state: (state ?? 'running') as CrawlState,
      discovered: Number(discovered ?? 0),
      stored: Number(stored ?? 0),
      deadLettered: Number(dead ?? 0),
      records: Number(records ?? 0),
      cancelled: Number(cancelled ?? 0),
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
    // Named crawls run on a fleet of one shard (`start`): its queues are the fleet's.
    const { bullPrefix } = this.keys.shards[0] as ShardKeys;
    const [http, render] = await Promise.all([
      this.redis.lrange(`${bullPrefix}:${CRAWL_QUEUE}:active`, 0, 9_999),
      this.redis.lrange(`${bullPrefix}:${RENDER_QUEUE}:active`, 0, 9_999),
    ]);
    if (http.length + render.length === 0) return 0;
    const pipeline = this.redis.pipeline();
    for (const id of http) pipeline.hget(this.keys.crawlJob(id), 'data');
    for (const id of render) pipeline.hget(this.keys.renderJob(id), 'data');
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
