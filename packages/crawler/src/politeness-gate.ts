import type { CrawlfleetConfig, FetchJob, TenantConfig } from '@crawlfleet/core';
import { classifyError } from '@crawlfleet/failures';
import type { PageFetcher } from '@crawlfleet/fetcher';
import {
  type HostPacer,
  type RobotsCache,
  RobotsDisallowedError,
  RobotsUnavailableError,
  type RobotsVerdict,
} from '@crawlfleet/politeness';
import type { ProxyHealth } from './proxy-health.js';
import type { ProxyPlans } from './proxy-plan.js';
import { type Failure, type GateVerdict, GO } from './verdicts.js';

export interface PolitenessGateDeps {
  config: CrawlfleetConfig;
  fetcher: PageFetcher;
  robots: RobotsCache;
  pacer: HostPacer;
  /** robots.txt is fetched through the tenant's proxies too: nothing of a proxied tenant goes direct. */
  proxies: ProxyPlans;
  /** Which proxies are down for the fleet. */
  proxyHealth?: ProxyHealth | undefined;
}

/** robots.txt and per-host pace, applied for the whole fleet before any fetch. */
export class PolitenessGate {
  /** One redirect check per tenant (tenants are few and fixed by the config). */
  private readonly hopChecks = new Map<string, (url: URL) => Promise<void>>();

  constructor(private readonly deps: PolitenessGateDeps) {}

  /**
   * robots.txt and the host's pace, for the whole fleet. A disallowed URL is refused (to the DLQ
   * without being fetched); an unreadable robots.txt is refused as recoverable (retried later); a
   * job that comes before the host's next-allowed time is held (delayed, no attempt spent).
   */
  async admit(data: FetchJob, tenant: TenantConfig, target: URL): Promise<GateVerdict> {
    let crawlDelayMs = 0;
    if (tenant.robots === 'respect') {
      try {
        const verdict = await this.robots(data.url, data.tenant, tenant);
        if (!verdict.allowed)
          return refuse({
            classification: { failureClass: 'non_recoverable', reason: 'robots_disallowed' },
            message: `robots.txt of ${target.origin} disallows ${target.pathname}`,
          });
        crawlDelayMs = verdict.crawlDelayMs ?? 0;
      } catch (error) {
        if (!(error instanceof RobotsUnavailableError)) throw error;
        return refuse({
          classification: { failureClass: 'recoverable', reason: 'robots_unavailable' },
          message: error.message,
        });
      }
    }
    const waitMs = await this.deps.pacer.reserve(target.host, Math.max(tenant.hostDelayMs, crawlDelayMs));
    return waitMs > 0 ? { kind: 'hold', waitMs, reason: 'host_paced' } : GO;
  }

  /**
   * Checks a redirect target against its origin's robots.txt before it is followed: throws
   * `RobotsDisallowedError` (to the DLQ) or `RobotsUnavailableError` (retried). Undefined when the
   * tenant ignores robots.txt.
   */
  hopCheck(tenantName: string, tenant: TenantConfig): ((url: URL) => Promise<void>) | undefined {
    if (tenant.robots !== 'respect') return undefined;
    let check = this.hopChecks.get(tenantName);
    if (check === undefined) {
      check = async (url) => {
        const verdict = await this.robots(url.href, tenantName, tenant);
        if (!verdict.allowed)
          throw new RobotsDisallowedError(`robots.txt of ${url.origin} disallows ${url.pathname} (a redirect target)`);
      };
      this.hopChecks.set(tenantName, check);
    }
    return check;
  }

  /** robots.txt's verdict on a URL for the tenant's user agent, fetched once for the fleet. */
  private robots(url: string, tenantName: string, tenant: TenantConfig): Promise<RobotsVerdict> {
    const tenantRef = { name: tenantName, config: tenant };
    const userAgent = tenant.userAgent ?? this.deps.config.fetch.userAgent;
    return this.deps.robots.check(url, userAgent, async (robotsUrl) => {
      try {
        const isDown = (id: string) => this.deps.proxyHealth?.isDown(id) ?? false;
        const proxy = this.deps.proxies.of(tenantName, tenant.proxy)?.forRequest(new URL(robotsUrl).hostname, isDown);
        const page = await this.deps.fetcher.fetch({ url: robotsUrl, method: 'GET' }, { ...tenantRef, proxy });
        return { status: page.status, body: page.body.toString('utf8') };
      } catch (error) {
        const permanent = classifyError(error).failureClass === 'non_recoverable';
        return permanent ? { unusable: error as Error } : { error: error as Error };
      }
    });
  }

  /** After a 429: every worker keeps off the host until the server's Retry-After (or a backoff). */
  async slowHost(host: string, retryAfterMs: number | undefined): Promise<void> {
    await this.deps.pacer.slowDown(host, Date.now() + (retryAfterMs ?? this.deps.config.jobs.backoffBaseMs));
  }
}

function refuse(failure: Failure): GateVerdict {
  return { kind: 'refuse', failure };
}
