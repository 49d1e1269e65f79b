import type { CrawlfleetConfig, FetchJob, TenantConfig } from '@crawlfleet/core';
import { type Classification, classifyError } from '@crawlfleet/failures';
import type { Fetcher } from '@crawlfleet/fetcher';
import {
  type HostPacer,
  type RobotsCache,
  RobotsDisallowedError,
  RobotsUnavailableError,
  type RobotsVerdict,
} from '@crawlfleet/politeness';
import type { Job } from 'bullmq';
import { holdBack } from './hold-back.js';

export interface PolitenessGateDeps {
  config: CrawlfleetConfig;
  fetcher: Fetcher;
  robots: RobotsCache;
  pacer: HostPacer;
}

/** Why a job may not be fetched: routed by the processor like any failure. */
export interface Refusal {
  classification: Classification;
  message: string;
}

/** robots.txt and per-host pace, applied for the whole fleet before any fetch. */
export class PolitenessGate {
  /** One redirect check per tenant (tenants are few and fixed by the config). */
  private readonly hopChecks = new Map<string, (url: URL) => Promise<void>>();

  constructor(private readonly deps: PolitenessGateDeps) {}

  /**
   * robots.txt and the host's pace, for the whole fleet. A disallowed URL goes to the DLQ without
   * being fetched; an unreadable robots.txt retries the job later; a job that comes before the
   * host's next-allowed time moves to delayed without spending an attempt.
   */
  async admit(
    job: Job,
    token: string | undefined,
    data: FetchJob,
    tenant: TenantConfig,
    target: URL,
  ): Promise<Refusal | undefined> {
    let crawlDelayMs = 0;
    if (tenant.robots === 'respect') {
      try {
        const verdict = await this.robots(data.url, data.tenant, tenant);
        if (!verdict.allowed) {
          return {
            classification: { failureClass: 'non_recoverable', reason: 'robots_disallowed' },
            message: `robots.txt of ${target.origin} disallows ${target.pathname}`,
          };
        }
        crawlDelayMs = verdict.crawlDelayMs ?? 0;
      } catch (error) {
        if (!(error instanceof RobotsUnavailableError)) throw error;
        return {
          classification: { failureClass: 'recoverable', reason: 'robots_unavailable' },
          message: error.message,
        };
      }
    }
    const waitMs = await this.deps.pacer.reserve(target.host, Math.max(tenant.hostDelayMs, crawlDelayMs));
    if (waitMs > 0) await holdBack(job, token, waitMs, 'host_paced');
    return undefined;
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
        const page = await this.deps.fetcher.fetch({ url: robotsUrl, method: 'GET' }, tenantRef);
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
