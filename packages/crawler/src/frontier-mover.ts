import { type FetchJob, type LinksToAdmit, parseFetchJob, type RedisClient, type ShardKeys } from '@crawlfleet/core';
import type { LinkAdmission } from '@crawlfleet/crawls';
import type { Logger } from '@crawlfleet/log';

/** The consumer group of the frontier: every worker is one consumer of it. */
const GROUP = 'movers';
/** Links moved per round trip. */
const BATCH = 500;
/** A link a mover took and did not acknowledge for this long is its no more: another takes it. */
const CLAIM_IDLE_MS = 30_000;
/** How often a worker looks for links a dead mover left. */
const RECLAIM_EVERY_MS = 10_000;

type StreamEntries = Array<[string, string[]]>;

export interface FrontierMoverOptions {
  redis: RedisClient;
  /** The shard whose frontier this mover serves. */
  shard: ShardKeys;
  /** This worker's name in the movers' group. */
  consumer: string;
  /** Puts jobs on their shards' queues (a job id already there adds nothing). */
  enqueue: (jobs: FetchJob[]) => Promise<void>;
  /** Admits the links of entries to admit (field `l`, more than one shard). */
  admission: LinkAdmission;
  logger: Logger;
  /** How long a taken entry goes unacknowledged before this mover claims it (30 s; tests shorten it). */
  claimIdleMs?: number | undefined;
}

/**
 * Moves the links result writes admitted to a shard's frontier (`<shard tag>:frontier`, a stream)
 * onto the crawl queues (each link to its own shard's). Every worker is a consumer of the
 * stream's group: it takes a batch, enqueues it (the idempotency key is the job id, so enqueueing
 * one twice adds nothing) and only then acknowledges and deletes it. A worker that dies holding
 * links leaves them pending; another claims them after 30 s. So a link a result write admitted
 * is enqueued, and once. With more than one shard a page's links come as one entry to admit
 * (`LinksToAdmit`): the mover has the crawl admit them first (`LinkAdmission`, whose receipt
 * gives a claimed entry the same links again), then enqueues the admitted ones.
 */
export class FrontierMover {
  private moving: Promise<void> | undefined;
  private again = false;
  /** The next run also claims what dead movers left (the timer's runs; a write's nudge only reads new links). */
  private reclaim = false;
  private timer: NodeJS.Timeout | undefined;
  private grouped: Promise<void> | undefined;
  private closed = false;

  private readonly redis: RedisClient;
  private readonly frontier: string;
  private readonly consumer: string;
  private readonly logger: Logger;

  constructor(private readonly options: FrontierMoverOptions) {
    this.redis = options.redis;
    this.frontier = options.shard.frontier;
    this.consumer = options.consumer;
    this.logger = options.logger;
  }

  /** Starts looking for links dead movers left, now and every few seconds. */
  start(): void {
    const tick = () => {
      this.reclaim = true;
      this.nudge();
    };
    this.timer = setInterval(tick, RECLAIM_EVERY_MS);
    this.timer.unref();
    tick();
  }

  /** A write admitted links: move them (one mover run at a time; one more after it when asked meanwhile). */
  nudge(): void {
    if (this.closed) return;
    if (this.moving !== undefined) {
      this.again = true;
      return;
    }
    const reclaim = this.reclaim;
    this.reclaim = false;
    this.moving = this.run(reclaim)
      .catch((error: Error) =>
        this.logger.warn({ err: error.message }, 'could not move links to the crawl queue; will try again'),
      )
      .finally(() => {
        this.moving = undefined;
        if (this.again && !this.closed) {
          this.again = false;
          this.nudge();
        }
      });
  }

  /** Waits for the move under way (a draining worker's last links go out before it stops). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.moving;
    this.closed = true;
  }

  private async run(reclaim: boolean): Promise<void> {
    // No crawl ever admitted a link: nothing to create, nothing to move.
    if (this.grouped === undefined && (await this.redis.exists(this.frontier)) === 0) return;
    await this.group();
    // Links a dead mover took (on the timer's runs), then new ones, until none is left.
    while (reclaim) {
      const claimed = (await this.redis.xautoclaim(
        this.frontier,
        GROUP,
        this.consumer,
        this.options.claimIdleMs ?? CLAIM_IDLE_MS,
        '0-0',
        'COUNT',
        BATCH,
      )) as [string, StreamEntries];
      const entries = claimed[1].filter((entry) => entry[1] !== null);
      if (entries.length === 0) break;
      await this.move(entries);
    }
    for (;;) {
      const read = (await this.redis.xreadgroup(
        'GROUP',
        GROUP,
        this.consumer,
        'COUNT',
        BATCH,
        'STREAMS',
        this.frontier,
        '>',
      )) as Array<[string, StreamEntries]> | null;
      const entries = read?.[0]?.[1] ?? [];
      if (entries.length === 0) break;
      await this.move(entries);
    }
  }

  private async move(entries: StreamEntries): Promise<void> {
    const texts: string[] = [];
    const receipts: Array<{ crawl: string; receipt: string }> = [];
    await Promise.all(
      entries.map(async ([id, fields]) => {
        if (fields[0] !== 'l') {
          texts.push(fields[1] ?? 'null');
          return;
        }
        const { crawl, maxPages, links } = JSON.parse(fields[1] ?? 'null') as LinksToAdmit;
        const receipt = `${this.options.shard.index}:${id}`;
        const admitted = await this.options.admission.admit(
          crawl,
          receipt,
          maxPages,
          links.map(([key]) => key),
        );
        for (const place of admitted) texts.push(links[place]?.[1] ?? 'null');
        receipts.push({ crawl, receipt });
      }),
    );
    // Admissions reach a replica before their links are enqueued: a failover of the fleet tag's
    // master then cannot lose an admission whose jobs exist (the crawl would count them pending for good).
    if (receipts.length > 0) await this.options.admission.replicate();
    const jobs: FetchJob[] = [];
    for (const text of texts) {
      const parsed = parseFetchJob(JSON.parse(text));
      if (parsed.ok) jobs.push(parsed.job);
      else this.logger.warn({ reason: parsed.reason }, 'dropped a frontier link that is not a job');
    }
    if (jobs.length > 0) await this.options.enqueue(jobs);
    const ids = entries.map(([id]) => id);
    await this.redis
      .multi()
      .xack(this.frontier, GROUP, ...ids)
      .xdel(this.frontier, ...ids)
      .exec();
    // Only once the entries are gone, and even then kept a while: a receipt dropped first would let
    // an entry be admitted (and counted) again by a mover that claimed it meanwhile.
    await this.options.admission.forget(receipts);
  }

  /** Creates the consumer group once (from the stream's start: links written before it are moved too). */
  private group(): Promise<void> {
    this.grouped ??= this.redis.xgroup('CREATE', this.frontier, GROUP, '0', 'MKSTREAM').then(
      () => undefined,
      (error: Error) => {
        if (!/BUSYGROUP/.test(error.message)) {
          this.grouped = undefined;
          throw error;
        }
      },
    );
    return this.grouped;
  }
}
