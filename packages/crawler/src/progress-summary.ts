import { type CrawlObserver, wholeNumberSetting } from '@crawlfleet/core';
import type { Logger } from '@crawlfleet/log';

export interface ProgressSummaryOptions {
  logger: Logger;
  /** How often a summary line is logged, in ms (at least 1). */
  everyMs: number;
  /** How many jobs this worker is running now. */
  inFlight: () => number;
  /** The observer every call is passed on to (metrics), when there is one. */
  next?: CrawlObserver | undefined;
}

/** 30 s: often enough to see a crawl move, rare enough to read. */
export const DEFAULT_PROGRESS_MS = 30_000;

/**
 * The worker's periodic `crawl progress` line at info: pages stored per second, duplicates,
 * retries, dead letters by failure class and jobs in flight, once per interval and only when
 * something happened. It sits in front of the worker's observer: a finished job costs a counter
 * increment, and the line is put together on the timer. `Required` makes a new observer method
 * a compile error here until it is passed on.
 */
export class ProgressSummary implements Required<CrawlObserver> {
  private stored = 0;
  private duplicates = 0;
  private retries = 0;
  private heldBack = 0;
  /** Dead letters of this interval by failure class; the classes are a handful. */
  private readonly deadLettered = new Map<string, number>();
  private since = performance.now();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: ProgressSummaryOptions) {}

  /** Starts the timer; it does not keep the process alive. */
  start(): this {
    this.since = performance.now();
    this.timer = setInterval(() => this.log(), this.options.everyMs).unref();
    return this;
  }

  /** Stops the timer and logs what the last, partial interval counted (a draining worker's last jobs). */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.log();
  }

  jobFinished(outcome: string, errorClass: string | undefined, reason: string | undefined): void {
    if (outcome === 'stored') this.stored++;
    else if (outcome === 'duplicate') this.duplicates++;
    else if (outcome === 'retrying') this.retries++;
    else if (outcome === 'held_back') this.heldBack++;
    else if (outcome === 'dead_lettered') {
      const failureClass = errorClass ?? 'unknown';
      this.deadLettered.set(failureClass, (this.deadLettered.get(failureClass) ?? 0) + 1);
    }
    this.options.next?.jobFinished?.(outcome, errorClass, reason);
  }

  private log(): void {
    const now = performance.now();
    const inFlight = this.options.inFlight();
    const finished = this.stored + this.duplicates + this.retries + this.heldBack;
    if (finished === 0 && this.deadLettered.size === 0 && inFlight === 0) {
      this.since = now;
      return;
    }
    const seconds = (now - this.since) / 1000;
    this.options.logger.info(
      {
        interval_s: round(seconds),
        pages_per_s: round(this.stored / seconds),
        stored: this.stored,
        duplicates: this.duplicates,
        retries: this.retries,
        held_back: this.heldBack,
        dead_lettered: Object.fromEntries(this.deadLettered),
        in_flight: inFlight,
      },
      'crawl progress',
    );
    this.stored = 0;
    this.duplicates = 0;
    this.retries = 0;
    this.heldBack = 0;
    this.deadLettered.clear();
    this.since = now;
  }

  fetched(status: number, durationMs: number, tls?: { version: string; cipher: string }): void {
    this.options.next?.fetched?.(status, durationMs, tls);
  }

  identityUsed(consistent: boolean): void {
    this.options.next?.identityUsed?.(consistent);
  }

  retryScheduled(backoffMs: number): void {
    this.options.next?.retryScheduled?.(backoffMs);
  }

  retryEnded(succeeded: boolean): void {
    this.options.next?.retryEnded?.(succeeded);
  }

  stateSynced(phase: 'hydrate' | 'commit' | 'browser_in' | 'browser_out', durationMs: number): void {
    this.options.next?.stateSynced?.(phase, durationMs);
  }

  cookiesMutated(source: 'http' | 'browser', count: number): void {
    this.options.next?.cookiesMutated?.(source, count);
  }

  contextOpened(launchMs: number): void {
    this.options.next?.contextOpened?.(launchMs);
  }

  contextClosed(): void {
    this.options.next?.contextClosed?.();
  }

  pageRendered(outcome: string): void {
    this.options.next?.pageRendered?.(outcome);
  }

  browserCookiesDropped(reason: string, count: number): void {
    this.options.next?.browserCookiesDropped?.(reason, count);
  }

  jarStored(bytes: number, mutations: number): void {
    this.options.next?.jarStored?.(bytes, mutations);
  }

  sessionCreated(): void {
    this.options.next?.sessionCreated?.();
  }

  sessionInvalidated(reason: string): void {
    this.options.next?.sessionInvalidated?.(reason);
  }

  sessionEphemeral(): void {
    this.options.next?.sessionEphemeral?.();
  }

  cookiesEvicted(count: number): void {
    this.options.next?.cookiesEvicted?.(count);
  }

  sessionLogin(kind: 'login' | 'refresh', outcome: 'ok' | 'refused'): void {
    this.options.next?.sessionLogin?.(kind, outcome);
  }
}

/** Two decimals: what a person reads in a log line. */
function round(value: number): number {
  return Math.round(value * 100) / 100;
}

/** `CRAWLFLEET_PROGRESS_MS`: whole ms, 0 for no progress lines; undefined when unset. */
export function progressEveryFromEnv(value: string | undefined): number | undefined {
  return wholeNumberSetting('CRAWLFLEET_PROGRESS_MS', value, { min: 0, must: 'a whole number of ms (0 for none)' });
}
