import type { AuditLog } from '@crawlfleet/audit';
import type { KeyLayout, RedisClient } from '@crawlfleet/core';
import type { Logger } from '@crawlfleet/log';

/** Failures of one proxy within `WINDOW_MS`, across the fleet, that mark it down. */
const FAILURES_TO_DOWN = 3;
const WINDOW_MS = 30_000;
/** How long a proxy stays down before sessions may be bound to it again. */
const DOWN_MS = 60_000;
/** How often a worker reads which of the proxies it uses are down. */
const REFRESH_MS = 1_000;

/**
 * A breaker per proxy, for the whole fleet, apart from the site's session breakers: a proxy that
 * fails `FAILURES_TO_DOWN` times within 30 s (connection refused or broken, 407) is down for a
 * minute, for every worker. Each worker reads which of its proxies are down once a second (one
 * pipeline), so the job path asks nothing of Redis; a session whose proxy is down moves to another
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
    const failures = this.keys.proxyFailures(proxy);
    const answers = await this.redis.multi().incr(failures).pexpire(failures, WINDOW_MS, 'NX').exec();
    const count = Number(answers?.[0]?.[1] ?? 0);
    if (count < FAILURES_TO_DOWN) return;
    const marked = await this.redis.set(this.keys.proxyDown(proxy), reason, 'PX', DOWN_MS, 'NX');
    this.down.set(proxy, Date.now() + DOWN_MS);
    if (marked !== 'OK') return;
    this.logger.warn(
      { proxy, reason, failures: count },
      'proxy down for the fleet: its sessions move to another proxy with a fresh identity',
    );
    await this.audit.append({ kind: 'proxy_down', reason, detail: { proxy, failures: count, downMs: DOWN_MS } });
  }

  private async refresh(): Promise<void> {
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
