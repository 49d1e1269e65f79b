import type { AuditLog } from '@crawlfleet/audit';
import type { KeyLayout, RedisClient } from '@crawlfleet/core';
import type { Logger } from '@crawlfleet/log';

/** Failures of one proxy within `WINDOW_MS`, across the fleet, that mark it down. */
const FAILURES_TO_DOWN = 3;
const WINDOW_MS = 30_000;
/**
 * Blocked answers (the site's 403 or 429) through one proxy within `BLOCK_WINDOW_MS`, across the
 * fleet, that mark it down. More than `FAILURES_TO_DOWN` and over a longer window: one 403 or 429
 * is often the page's or the session's own (a forbidden page, a session's rate limit, which the
 * session's breaker and quarantine handle), while a site that blocks a proxy's address answers
 * every request through it so.
 */
const BLOCKS_TO_DOWN = 10;
const BLOCK_WINDOW_MS = 60_000;
/** The statuses of a site that blocks the address a request comes from. */
const BLOCKED_STATUSES: ReadonlySet<number> = new Set([403, 429]);
/** How long a proxy stays down before sessions may be bound to it again. */
const DOWN_MS = 60_000;
/** How often a worker reads which of the proxies it uses are down. */
const REFRESH_MS = 1_000;

/** Whether a site's answer says it blocks the address the request came from: a 403 or a 429. */
export function isBlockedAnswer(status: number): boolean {
  return BLOCKED_STATUSES.has(status);
}

/**
 * A breaker per proxy, for the whole fleet, apart from the site's session breakers: a proxy that
 * fails `FAILURES_TO_DOWN` times within 30 s (connection refused or broken, 407), or through which
 * the sites answered 403 or 429 `BLOCKS_TO_DOWN` times within a minute, is down for a minute, for
 * every worker. Each worker reads which of its proxies are down once a second (one pipeline), so
 * the job path asks nothing of Redis; a session whose proxy is down moves to another
 * (`ProxyPlan.forSession`).
 */
export class ProxyHealth {
  /** Proxies down, until when (ms since the epoch), as this worker last read them. */
  private readonly down = new Map<string, number>();
  private readonly known = new Set<string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: KeyLayout,
    private readonly audit: AuditLog,
    private readonly logger: Logger,
  ) {}

  /** Whether the proxy is down, as this worker knows (read at most a second ago). */
  isDown(proxy: string): boolean {
    if (!this.known.has(proxy)) {
      this.known.add(proxy);
      this.timer ??= setInterval(() => void this.refresh().catch(() => undefined), REFRESH_MS).unref();
    }
    const until = this.down.get(proxy);
    return until !== undefined && until > Date.now();
  }

  /** Counts a failure of the proxy; the one that crosses the threshold marks it down and says so. */
  async recordFailure(proxy: string, reason: string): Promise<void> {
    const failures = await this.count(this.keys.proxyFailures(proxy), WINDOW_MS);
    if (failures >= FAILURES_TO_DOWN) await this.markDown(proxy, reason, { failures });
  }

  /**
   * Counts a blocked answer (see `isBlockedAnswer`) the site sent through the proxy, whatever the
   * job then does with it; the one that crosses the threshold marks it down as `proxy_blocked`.
   */
  async recordBlocked(proxy: string): Promise<void> {
    const blocks = await this.count(this.keys.proxyBlocks(proxy), BLOCK_WINDOW_MS);
    if (blocks >= BLOCKS_TO_DOWN) await this.markDown(proxy, 'proxy_blocked', { blocks });
  }

  /** Adds one to a counter whose window starts with its first count: one round trip. */
  private async count(key: string, windowMs: number): Promise<number> {
    const answers = await this.redis.multi().incr(key).pexpire(key, windowMs, 'NX').exec();
    return Number(answers?.[0]?.[1] ?? 0);
  }

  /** Marks the proxy down for the fleet; only the worker that set the mark says so. */
  private async markDown(
    proxy: string,
    reason: string,
    counted: { failures: number } | { blocks: number },
  ): Promise<void> {
    const marked = await this.redis.set(this.keys.proxyDown(proxy), reason, 'PX', DOWN_MS, 'NX');
    this.down.set(proxy, Date.now() + DOWN_MS);
    if (marked !== 'OK') return;
    this.logger.warn(
      { proxy, reason, ...counted },
      'proxy down for the fleet: its sessions move to another proxy with a fresh identity',
    );
    await this.audit.append({ kind: 'proxy_down', reason, detail: { proxy, ...counted, downMs: DOWN_MS } });
  }

  /** Reads which of the known proxies are down now, instead of at the next tick (one round trip). */
  async refresh(): Promise<void> {
    const proxies = [...this.known];
    const pipeline = this.redis.pipeline();
    for (const proxy of proxies) pipeline.pttl(this.keys.proxyDown(proxy));
    const answers = (await pipeline.exec()) ?? [];
    const now = Date.now();
    for (const [i, proxy] of proxies.entries()) {
      const ttl = Number(answers[i]?.[1]);
      if (ttl > 0) this.down.set(proxy, now + ttl);
      else this.down.delete(proxy);
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}
