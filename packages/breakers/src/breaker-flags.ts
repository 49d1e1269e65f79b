import { readFileSync } from 'node:fs';
import type { RedisClient, SessionKeys } from '@crawlfleet/core';

const TAKE_PROBE = readFileSync(new URL('../lua/take-probe.lua', import.meta.url), 'utf8');

type WithProbe = RedisClient & { cfTakeProbe(breaker: string, probe: string, ms: number): Promise<number> };

/**
 * A session breaker's state as the fleet shares it, beside the session's slates: while its flag
 * is set, the breaker is open until the time it holds; one half-open probe is leased across the
 * fleet. The hydrate script reads the flag with the slates.
 */
export class BreakerFlags {
  private readonly redis: WithProbe;

  /** `written` is told before this worker changes a flag a hydrate reads (it drops what it kept). */
  constructor(
    redis: RedisClient,
    private readonly written: (session: SessionKeys) => void = () => undefined,
  ) {
    if (!('cfTakeProbe' in redis)) redis.defineCommand('cfTakeProbe', { numberOfKeys: 2, lua: TAKE_PROBE });
    this.redis = redis as WithProbe;
  }

  /**
   * Opens the session's breaker for the fleet until `until`. A worker's own trip opens it only
   * if it is not open already (one open period per incident, however many workers noticed);
   * a failed probe (`reopen`) starts a new period and frees the probe. True when it opened.
   */
  async open(session: SessionKeys, until: number, reopen = false): Promise<boolean> {
    this.written(session);
    const keepMs = Math.max(1, until - Date.now()) + 10 * 60_000;
    if (!reopen) return (await this.redis.set(session.breaker, String(until), 'PX', keepMs, 'NX')) === 'OK';
    await this.redis.multi().set(session.breaker, String(until), 'PX', keepMs).del(session.breakerProbe).exec();
    return true;
  }

  /**
   * Takes the one half-open probe of the session's breaker, for `ms`, if it is still open:
   * `probe` (this caller probes), `busy` (another job does), or `closed` (run as usual).
   */
  async tryProbe(session: SessionKeys, ms: number): Promise<'probe' | 'busy' | 'closed'> {
    const answer = await this.redis.cfTakeProbe(session.breaker, session.breakerProbe, ms);
    return answer === 1 ? 'probe' : answer === 0 ? 'busy' : 'closed';
  }

  /** Closes the session's breaker for the fleet. */
  async close(session: SessionKeys): Promise<void> {
    this.written(session);
    await this.redis.del(session.breaker, session.breakerProbe);
  }
}
