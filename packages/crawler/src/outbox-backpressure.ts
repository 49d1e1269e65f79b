import type { Logger } from '@crawlfleet/log';
import { isFull, type Outbox, type OutboxFill, type OutboxLimits, totalFill } from '@crawlfleet/results';

/** What backpressure pauses and resumes: the worker's taking of new jobs. */
export interface JobIntake {
  /** Stop taking new jobs; those running finish. */
  pause(): Promise<void>;
  resume(): Promise<void>;
}

/** How often a holding worker looks at the outbox again. */
const RECHECK_MS = 500;
/** Workers take jobs again when the outbox is below this share of both limits. */
const RESUME_BELOW = 0.9;

/**
 * Holds the worker back while the results outbox is full, instead of losing results: it takes no
 * new jobs (those it holds finish and are written; no result is ever dropped to make room), logs
 * once, and takes jobs again when sinks have caught up below 90% of both limits. Each result
 * write tells it the outbox's fill, so it holds back within one turn of reaching a limit.
 */
export class OutboxBackpressure {
  private holding = false;
  private last: OutboxFill = { entries: 0, bytes: 0 };
  /** Each shard's outbox as last seen; `last` is their sum. */
  private shards: OutboxFill[] = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly outbox: Outbox,
    private readonly limits: OutboxLimits,
    private readonly intake: JobIntake,
    private readonly logger: Logger,
  ) {}

  /** True while this worker takes no new jobs because the outbox is full. */
  get isHolding(): boolean {
    return this.holding;
  }

  /** The outbox's fill as last seen (after a write, or a check while holding). */
  get fill(): OutboxFill {
    return this.last;
  }

  /** Reads the outbox once (at start, before the first job) and holds back if it is full. */
  async check(): Promise<void> {
    this.shards = await this.outbox.fills();
    this.holdIfFull();
  }

  /** Told a shard's outbox fill after every result write to it; the limits hold for all shards together. */
  observe(shardFill: OutboxFill, shard: number): void {
    this.shards[shard] = shardFill;
    this.holdIfFull();
  }

  /** Holds back once the shards' outboxes together reach a limit. */
  private holdIfFull(): void {
    const fill = totalFill(this.shards);
    this.last = fill;
    if (this.holding || this.closed || !isFull(fill, this.limits)) return;
    this.holding = true;
    this.logger.warn(
      { outbox_entries: fill.entries, outbox_bytes: fill.bytes, ...this.limits },
      'the results outbox is full: taking no new jobs until sinks catch up (crawlfleet sink run; crawlfleet status shows the outbox)',
    );
    void this.intake.pause();
    this.schedule();
  }

  private schedule(): void {
    this.timer = setTimeout(() => void this.recheck(), RECHECK_MS);
    this.timer.unref();
  }

  private async recheck(): Promise<void> {
    if (this.closed) return;
    try {
      this.shards = await this.outbox.fills();
      this.last = totalFill(this.shards);
    } catch (error) {
      this.logger.warn({ err: (error as Error).message }, 'could not read the results outbox; still holding back');
      this.schedule();
      return;
    }
    const { outboxMaxLen, outboxMaxBytes } = this.limits;
    if (this.last.entries >= outboxMaxLen * RESUME_BELOW || this.last.bytes >= outboxMaxBytes * RESUME_BELOW) {
      this.schedule();
      return;
    }
    this.holding = false;
    this.logger.info(
      { outbox_entries: this.last.entries, outbox_bytes: this.last.bytes },
      'the results outbox has room again: taking jobs',
    );
    await this.intake.resume();
  }

  /** Stops looking (the worker is draining); a paused intake stays paused. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }
}
