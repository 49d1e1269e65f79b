import { readFileSync } from 'node:fs';
import type { KeyLayout } from '@crawlfleet/core';
import type { Redis } from 'ioredis';

const RESERVE_HOST = readFileSync(new URL('../lua/reserve-host.lua', import.meta.url), 'utf8');
const SLOW_HOST = readFileSync(new URL('../lua/slow-host.lua', import.meta.url), 'utf8');

type WithPacing = Redis & {
  cfReserveHost(key: string, now: number, intervalMs: number): Promise<number>;
  cfSlowHost(key: string, until: number, now: number): Promise<number>;
};

/**
 * Per-host pacing shared by the fleet: one next-allowed time per host in Redis. A job that comes
 * too early is told how long to wait (the worker moves it to delayed; it never sleeps in a slot).
 */
export class HostPacer {
  private readonly redis: WithPacing;

  constructor(
    redis: Redis,
    private readonly keys: KeyLayout,
  ) {
    if (!('cfReserveHost' in redis)) redis.defineCommand('cfReserveHost', { numberOfKeys: 1, lua: RESERVE_HOST });
    if (!('cfSlowHost' in redis)) redis.defineCommand('cfSlowHost', { numberOfKeys: 1, lua: SLOW_HOST });
    this.redis = redis as WithPacing;
  }

  /** 0 when this caller may fetch from `host` now, else the ms to wait. One round trip. */
  reserve(host: string, intervalMs: number, now: number = Date.now()): Promise<number> {
    return this.redis.cfReserveHost(this.keys.host(host), now, Math.max(0, Math.round(intervalMs)));
  }

  /** Keeps every worker off `host` until `until` (ms since the epoch). */
  slowDown(host: string, until: number, now: number = Date.now()): Promise<number> {
    return this.redis.cfSlowHost(this.keys.host(host), Math.round(until), now);
  }
}
