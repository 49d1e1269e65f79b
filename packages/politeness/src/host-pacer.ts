import { readFileSync } from 'node:fs';
import type { KeyLayout, RedisClient } from '@crawlfleet/core';

const RESERVE_HOST = readFileSync(new URL('../lua/reserve-host.lua', import.meta.url), 'utf8');
const SLOW_HOST = readFileSync(new URL('../lua/slow-host.lua', import.meta.url), 'utf8');

type WithPacing = RedisClient & {
  cfReserveHost(key: string, now: number, intervalMs: number): Promise<number>;
  cfSlowHost(key: string, until: number, now: number): Promise<number>;
};

export interface HostPacerOptions {
  /**
   * How long a worker trusts what it last read of an unpaced host (no interval: only a 429 can
   * hold it back), in ms. Within this time its jobs to that host ask Redis nothing; a 429 seen
   * by another worker reaches this one at most this late. 0 asks on every job. Default 1000.
   */
  unpacedRecheckMs?: number;
  /** Unpaced hosts remembered per worker (least recently read go first). Default 10,000. */
  maxHosts?: number;
}

/**
 * Per-host pacing shared by the fleet: one next-allowed time per host in Redis. A job that comes
 * too early is told how long to wait (the worker moves it to delayed; it never sleeps in a slot).
 */
export class HostPacer {
  private readonly redis: WithPacing;
  private readonly recheckMs: number;
  private readonly maxHosts: number;
  /** Unpaced hosts: when this worker last read each one's next-allowed time, and what it was. */
  private readonly unpaced = new Map<string, { readAt: number; nextAllowed: number }>();
  /** Reads of unpaced hosts in flight: the next-allowed time each will give. */
  private readonly reading = new Map<string, Promise<number>>();

  constructor(
    redis: RedisClient,
    private readonly keys: KeyLayout,
    options: HostPacerOptions = {},
  ) {
    this.recheckMs = options.unpacedRecheckMs ?? 1000;
    this.maxHosts = options.maxHosts ?? 10_000;
    if (!('cfReserveHost' in redis)) redis.defineCommand('cfReserveHost', { numberOfKeys: 1, lua: RESERVE_HOST });
    if (!('cfSlowHost' in redis)) redis.defineCommand('cfSlowHost', { numberOfKeys: 1, lua: SLOW_HOST });
    this.redis = redis as WithPacing;
  }

  /**
   * 0 when this caller may fetch from `host` now, else the ms to wait. A paced host reserves its
   * next slot in Redis, one round trip every time; an unpaced one is read at most once per
   * `unpacedRecheckMs` by this worker.
   */
  async reserve(host: string, intervalMs: number, now: number = Date.now()): Promise<number> {
    const interval = Math.max(0, Math.round(intervalMs));
    if (interval > 0) return this.redis.cfReserveHost(this.keys.host(host), now, interval);
    const known = this.unpaced.get(host);
    if (known !== undefined && now - known.readAt < this.recheckMs) return Math.max(0, known.nextAllowed - now);
    // One read per host at a time: the jobs that find the memo stale together share it.
    let reading = this.reading.get(host);
    if (reading === undefined) {
      reading = this.redis.cfReserveHost(this.keys.host(host), now, 0).then(
        (waitMs) => {
          this.reading.delete(host);
          this.remember(host, now, now + waitMs);
          return now + waitMs;
        },
        (error: unknown) => {
          this.reading.delete(host);
          throw error;
        },
      );
      this.reading.set(host, reading);
    }
    return Math.max(0, (await reading) - now);
  }

  /** Keeps every worker off `host` until `until` (ms since the epoch). */
  async slowDown(host: string, until: number, now: number = Date.now()): Promise<number> {
    const nextAllowed = await this.redis.cfSlowHost(this.keys.host(host), Math.round(until), now);
    // This worker's own jobs see the slowdown at once, whatever they read of the host before.
    this.remember(host, now, nextAllowed);
    return nextAllowed;
  }

  private remember(host: string, readAt: number, nextAllowed: number): void {
    this.unpaced.delete(host);
    this.unpaced.set(host, { readAt, nextAllowed });
    if (this.unpaced.size > this.maxHosts) {
      const [oldest] = this.unpaced.keys();
      if (oldest !== undefined) this.unpaced.delete(oldest);
    }
  }
}
