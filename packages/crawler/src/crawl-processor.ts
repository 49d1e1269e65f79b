import type { AuditLog } from '@crawlfleet/audit';
import { type BrowserLogin, isLoginFailure, LoginCoolingDownError, SessionAuthenticator } from '@crawlfleet/auth';
import type { BodyStore } from '@crawlfleet/bodies';
import {
  type CrawlfleetConfig,
  type CrawlObserver,
  type FetchJob,
  InputError,
  type KeyLayout,
  parseFetchJob,
  parseTargetUrl,
  type TenantConfig,
  tenantConfig,
} from '@crawlfleet/core';
import type { CrawlStore } from '@crawlfleet/crawls';
import type { DeadLetterQueue } from '@crawlfleet/dlq';
import { type Classification, CrawlFailure, classifyError, classifyResponse } from '@crawlfleet/failures';
import type { FetchedPage, FetchRequest, FetchTenant, PageFetcher, ProxyEndpoint } from '@crawlfleet/fetcher';
import type { Logger } from '@crawlfleet/log';
import type { HostPacer, RobotsCache } from '@crawlfleet/politeness';
import type { ResultSink } from '@crawlfleet/results';
import type { JobSession, SessionManager } from '@crawlfleet/sessions';
import { contextOf, inSpan, SpanKind, type TraceCarrier } from '@crawlfleet/tracing';
import { DelayedError, type Job, type Queue } from 'bullmq';
import { auditSubject } from './audit-subject.js';
import { BreakerGate } from './breaker-gate.js';
import { CrawlGate, PAUSED_WAIT_MS } from './crawl-gate.js';
import type { CrawlPages } from './crawl-pages.js';
import { type JobOutcome, RetryLaterError } from './job-errors.js';
import { PolitenessGate } from './politeness-gate.js';
import { isProxyFailure, proxyFailure } from './proxy-failures.js';
import { isBlockedAnswer, type ProxyHealth } from './proxy-health.js';
import { ProxyPlans } from './proxy-plan.js';
import { responseSummary, SNIPPET_BYTES } from './response-summary.js';
import { SessionIdentities } from './session-identity.js';
import { Settle, type Settled } from './settle.js';
import type { Failure, JobVerdict } from './verdicts.js';

/** How long a session's jobs wait while it moves to another proxy. */
const ROTATION_WAIT_MS = 200;

export interface CrawlProcessorDeps {
  config: CrawlfleetConfig;
  keys: KeyLayout;
  /** The HTTP fetcher: logins, robots.txt, and the job's page unless `pages` renders it. */
  fetcher: PageFetcher;
  /** What fetches the job's own page when it is not `fetcher`: a browser worker's `BrowserFetcher`. */
  pages?: PageFetcher | undefined;
  /** Logs sessions in through a browser, for tenants whose login says `browser`. */
  browserLogin?: BrowserLogin | undefined;
  results: ResultSink;
  /** Where bodies above `results.inlineBodyBytes` go; without one every body stays inline. */
  bodies?: BodyStore | undefined;
  dlq: DeadLetterQueue;
  /** The queue a job id is on (its shard's), to read a job's recorded attempts. */
  queueOf: (jobId: string) => Queue;
  sessions: SessionManager;
  audit: AuditLog;
  robots: RobotsCache;
  pacer: HostPacer;
  /** Where the crawl path reports what it does (metrics); optional. */
  observer?: CrawlObserver | undefined;
  logger: Logger;
  /** Which proxies are down for the fleet; without it, none ever is. */
  proxyHealth?: ProxyHealth | undefined;
  /** The page stage of named crawls' jobs (links, the handler); without it, no link is followed. */
  crawlPages?: CrawlPages | undefined;
  /** Told when a result write admitted links to the frontier. */
  frontier?: { nudge(): void } | undefined;
  /** Named crawls' counts (dead-lettered pages). */
  crawls?: CrawlStore | undefined;
}

/**
 * What one job does, as stages that each return what they found: `admit` (payload, tenant, a
 * key that finished before), open the session, the gates (quarantine, breaker, robots.txt, host
 * pace: go, hold or refuse), fetch, `judge` (classify the answer), then `settle` (`settle.ts`),
 * the one place that writes the outcome and gives BullMQ its signal. A failure's retry or DLQ is
 * `decide`'s (`decide.ts`, pure). Nothing here decides by throwing; a throw is a surprise (Redis
 * down, a bug), settled as a recoverable `internal_error`.
 */
export class CrawlProcessor {
  private readonly breakerGate: BreakerGate;
  private readonly politeness: PolitenessGate;
  private readonly authenticator: SessionAuthenticator;
  private readonly settler: Settle;

  /** The tenants' proxies: which one each session's (and each other job's) requests go through. */
  private readonly proxies = new ProxyPlans();
  private readonly identities: SessionIdentities;
  /** Named crawls' states: a paused crawl's jobs wait, a cancelled one's end. */
  private readonly crawlGate: CrawlGate | undefined;

  constructor(private readonly deps: CrawlProcessorDeps) {
    this.breakerGate = new BreakerGate(deps);
    this.politeness = new PolitenessGate({ ...deps, proxies: this.proxies });
    this.authenticator = new SessionAuthenticator({
      fetcher: deps.fetcher,
      browser: deps.browserLogin,
      // The lease must outlive the slowest login (a refused refresh, the login page and its form
      // are three requests), or a second worker logs in alongside.
      leaseMs: Math.max(deps.config.sessions.reauthLeaseMs, 3 * deps.config.fetch.timeoutMs + 5_000),
      logger: deps.logger,
      observer: deps.observer,
    });
    this.settler = new Settle({ ...deps, hasher: deps.sessions.hasher });
    this.identities = new SessionIdentities(deps.config.fetch.userAgent);
    this.crawlGate = deps.crawls === undefined ? undefined : new CrawlGate(deps.crawls);
  }

  /** Stops this worker's breaker timers (on drain). */
  shutdown(): void {
    this.breakerGate.shutdown();
    this.crawlGate?.close();
  }

  /** `token` is the worker's lock token: with it, a job that is too early moves to delayed. */
  async process(job: Job, token?: string): Promise<JobOutcome> {
    const carried = (job.data as { trace?: TraceCarrier } | undefined)?.trace;
    const parent = typeof carried?.traceparent === 'string' ? contextOf(carried) : undefined;
    return inSpan(
      'crawl.job',
      {
        kind: SpanKind.CONSUMER,
        parent,
        attributes: { 'messaging.message.id': String(job.id), 'crawlfleet.attempt': job.attemptsMade + 1 },
        // Held back and retried jobs are the normal flow, not errors of the span.
        expected: (error) => error instanceof DelayedError || error instanceof RetryLaterError,
      },
      async () => {
        const settled = await this.settleSafely(job, token, await this.verdict(job));
        if ('signal' in settled) throw settled.signal;
        return settled.outcome;
      },
    );
  }

  /** The stages' verdict; a surprise on the way (Redis trouble, a bug) is a recoverable failure. */
  private async verdict(job: Job): Promise<JobVerdict> {
    try {
      return await this.run(job);
    } catch (error) {
      return internalFailure(job, error);
    }
  }

  /**
   * Settles, and a surprise while settling (the result write met Redis trouble) is settled again
   * as a recoverable failure: retried, and dead-lettered on the last attempt, so no job ends
   * failed without a DLQ entry while Redis can still take one.
   */
  private async settleSafely(job: Job, token: string | undefined, verdict: JobVerdict): Promise<Settled> {
    try {
      return await this.settler.settle(job, token, verdict);
    } catch (error) {
      if (verdict.kind === 'failed' && verdict.failure.classification.reason === 'internal_error') throw error;
      return this.settler.settle(job, token, internalFailure(job, error));
    }
  }

  private async run(job: Job): Promise<JobVerdict> {
    const admitted = await this.admit(job);
    if ('kind' in admitted) return admitted;
    const { data, tenant } = admitted;
    const crawlState = await this.crawlGate?.stateOf(data);
    if (crawlState === 'paused') return { kind: 'hold', waitMs: PAUSED_WAIT_MS, reason: 'crawl_paused' };
    if (crawlState === 'cancelled') return { kind: 'cancelled', crawl: data.crawl?.name as string };
    const session =
      data.sessionId === undefined
        ? undefined
        : await inSpan('session.hydrate', {}, () =>
            this.deps.sessions.open(this.deps.keys.session(data.tenant, data.sessionId as string), {
              auth: tenant.auth?.login !== undefined,
              storage: data.render === true,
            }),
          );
    if (session?.quarantined)
      return failed(
        data,
        { failureClass: 'compliance_blocked', reason: 'session_quarantined' },
        'the session is quarantined after a compliance block',
      );
    let target: URL;
    try {
      target = parseTargetUrl(data.url);
    } catch (error) {
      const reason = error instanceof InputError ? error.code : 'invalid_url';
      return failed(data, { failureClass: 'non_recoverable', reason }, (error as Error).message);
    }
    const breaker = this.breakerGate.whileOpen(session);
    if (breaker.verdict.kind === 'hold') return breaker.verdict;
    const polite = await this.politeness.admit(data, tenant, target);
    if (polite.kind === 'hold') return polite;
    if (polite.kind === 'refuse') return { kind: 'failed', data, failure: polite.failure };
    // The probe is taken only by a job that is about to fetch, so a paced job cannot sit on it.
    const probe = breaker.openedBefore ? await this.breakerGate.takeProbe(job, data, session) : undefined;
    if (probe?.verdict.kind === 'hold') return probe.verdict;
    const probing = probe?.probing ?? false;

    const rotation = await this.rotateIfProxyDown(job, data, tenant, session, target.hostname);
    if (rotation !== undefined) return rotation;
    let proxy: ProxyEndpoint | undefined;
    let page: FetchedPage;
    try {
      // Inside: a proxy whose secret is missing fails the job as proxy_secret_missing.
      const chosen = await this.proxyOf(data, tenant, session, target.hostname);
      proxy = chosen;
      page = await inSpan(
        'http.fetch',
        { kind: SpanKind.INTERNAL, attributes: { 'http.request.method': data.method, 'url.full': data.url } },
        async (span) => {
          const fetched = await this.fetch(data, tenant, session, chosen);
          span.setAttribute('http.response.status_code', fetched.status);
          return fetched;
        },
      );
    } catch (error) {
      const found =
        error instanceof CrawlFailure
          ? {
              failureClass: error.failureClass,
              reason: error.reason,
              status: error.status,
              retryAfterMs: error.retryAfterMs,
            }
          : classifyError(error);
      const classification = proxyFailure(found, proxy !== undefined) ?? found;
      if (proxy !== undefined && isProxyFailure(classification.reason))
        await this.deps.proxyHealth?.recordFailure(proxy.id, classification.reason);
      // A redirect target's robots.txt (refusing, or down), a refused login and a failing proxy
      // say nothing about the session's health: they must not count towards its breaker (a
      // refused login has its own cool-down). A probe left undecided expires.
      const reason = classification.reason;
      if (!reason.startsWith('robots_') && !isLoginFailure(reason) && !isProxyFailure(reason)) {
        session?.recordError();
        await this.breakerGate.recordHealth(job, data, session, probing, classification);
      }
      const conflict = await this.commitSession(session, job);
      if (conflict !== undefined) return { kind: 'failed', data, failure: conflict };
      if (error instanceof LoginCoolingDownError)
        return { kind: 'hold', waitMs: error.waitMs, reason: 'auth_cooldown' };
      const response = error instanceof CrawlFailure ? error.response : undefined;
      return { kind: 'failed', data, failure: { classification, message: (error as Error).message, response } };
    }

    this.deps.observer?.fetched?.(page.status, page.durationMs, page.tls);
    let failure: Failure | undefined;
    let crawled: Awaited<ReturnType<CrawlPages['of']>> | undefined;
    try {
      failure = await this.judge(job, data, tenant, target, page, session, proxy !== undefined);
      if (failure !== undefined && proxy !== undefined && isProxyFailure(failure.classification.reason))
        await this.deps.proxyHealth?.recordFailure(proxy.id, failure.classification.reason);
      else await this.breakerGate.recordHealth(job, data, session, probing, failure?.classification);
      // A crawl's page: its links and its handler, before the session's commit (the handler may
      // move a workflow on).
      crawled = failure === undefined ? await this.deps.crawlPages?.of(data, page, session) : undefined;
    } finally {
      // A rendered page gives what it changed since (a handler's clicks) back to the session, and
      // its browser context closes, before the session's commit.
      await page.rendered?.close();
    }
    // A render job's browser reported its own changes; an HTTP job's are the jar's.
    if (session !== undefined && page.rendered === undefined)
      this.deps.observer?.cookiesMutated?.('http', session.jar.changed.size);
    const conflict = await this.commitSession(session, job);
    if (conflict !== undefined) return { kind: 'failed', data, failure: conflict };
    if (failure !== undefined) return { kind: 'failed', data, failure };
    if (crawled !== undefined && 'failure' in crawled) return { kind: 'failed', data, failure: crawled.failure };
    return { kind: 'fetched', data, tenant, page, proxy: proxy?.id, frontier: crawled?.frontier };
  }

  /**
   * The payload and its tenant, or why the job cannot run. Only a job that started before (a
   * retry, a delayed job, or a re-run after a worker died between the result write and the ack)
   * or a replayed one can find its key finished: a plain first start skips the command. The
   * result write refuses a second result in any case.
   */
  private async admit(job: Job): Promise<{ data: FetchJob; tenant: TenantConfig } | JobVerdict> {
    const parsed = parseFetchJob(job.data);
    if (!parsed.ok)
      return failed(undefined, { failureClass: 'non_recoverable', reason: 'invalid_payload' }, parsed.reason);
    const data = parsed.job;
    let tenant: TenantConfig;
    try {
      tenant = tenantConfig(this.deps.config, data.tenant);
    } catch (error) {
      return failed(data, { failureClass: 'non_recoverable', reason: 'unknown_tenant' }, (error as Error).message);
    }
    const mayBeFinished =
      job.attemptsMade > 0 || job.attemptsStarted > 1 || job.stalledCounter > 0 || data.replayedAt !== undefined;
    if (mayBeFinished && (await this.deps.results.isFinished(data.idempotencyKey))) return { kind: 'duplicate' };
    return { data, tenant };
  }

  /**
   * What the answer says: fine (undefined), or a failure. A 429 past the session's threshold or a
   * Retry-After longer than the tenant allows is a compliance block; a 429 slows the host for the
   * whole fleet; a compliance block quarantines the session and raises the alert.
   */
  private async judge(
    job: Job,
    data: FetchJob,
    tenant: TenantConfig,
    target: URL,
    page: FetchedPage,
    session: JobSession | undefined,
    proxied: boolean,
  ): Promise<Failure | undefined> {
    const snippet = page.body.subarray(0, SNIPPET_BYTES).toString('utf8');
    let failure = classifyResponse({ status: page.status, headers: page.headers, bodySnippet: snippet });
    // The proxy's own refusal is not the site's answer.
    const fromProxy = failure === undefined ? undefined : proxyFailure(failure, proxied);
    if (fromProxy !== undefined)
      return { classification: fromProxy, message: `the proxy refused the request: HTTP ${page.status}` };
    if (failure?.status === 429 && failure.failureClass === 'recoverable' && (await session?.rateLimitedTooOften())) {
      failure = { failureClass: 'compliance_blocked', reason: 'rate_limited_repeatedly', status: 429 };
    }
    const maxRetryAfterMs = tenant.maxRetryAfterSeconds * 1000;
    if (failure?.retryAfterMs !== undefined && failure.retryAfterMs > maxRetryAfterMs) {
      failure = {
        failureClass: 'compliance_blocked',
        reason: 'retry_after_too_long',
        status: failure.status,
        retryAfterMs: failure.retryAfterMs,
      };
    }
    if (failure?.status === 429) {
      // Every worker holds the host, but never longer than the tenant's maximum.
      const waitMs = failure.retryAfterMs === undefined ? undefined : Math.min(failure.retryAfterMs, maxRetryAfterMs);
      await this.politeness.slowHost(target.host, waitMs);
    }
    if (failure === undefined) return undefined;
    session?.recordError();
    if (failure.failureClass === 'compliance_blocked') await this.raiseComplianceAlert(job, data, failure, session);
    const message =
      failure.reason === 'retry_after_too_long'
        ? `HTTP ${page.status} from ${page.finalUrl} asks to wait ${Math.round((failure.retryAfterMs ?? 0) / 1000)} s (Retry-After), more than the tenant's maxRetryAfterSeconds of ${tenant.maxRetryAfterSeconds}`
        : `HTTP ${page.status} from ${page.finalUrl}`;
    return { classification: failure, message, response: responseSummary(page, tenant) };
  }

  /**
   * Fetches as the session: its jar, user agent and login. A login about to expire is renewed
   * first; a page that says the session is logged out (401, a 403 that is not a challenge, the
   * login page, the tenant's signs) logs it in once across the fleet and is fetched again. A
   * login page is never returned as the page: it fails the job as `auth_failed`.
   */
  private async fetch(
    data: FetchJob,
    tenant: TenantConfig,
    session: JobSession | undefined,
    proxy: ProxyEndpoint | undefined,
  ): Promise<FetchedPage> {
    // A session keeps one user agent, header set, TLS handshake and proxy for life, so a site
    // never sees its identity change.
    const { headers, tls, consistent } = await this.identities.of(data, tenant, session, proxy);
    if (consistent !== undefined) this.deps.observer?.identityUsed?.(consistent);
    // Logins and redirects go with the request: through the same proxy, as the same identity.
    const tenantRef = { name: data.tenant, config: tenant, proxy, tls };
    const request = {
      url: data.url,
      method: data.method,
      body: data.body,
      headers,
      cookieJar: session?.jar,
      // robots.txt is asked about every redirect target too, not only the job's URL.
      beforeHop: this.politeness.hopCheck(data.tenant, tenant),
      // A browser page takes all of the session (its cookies, its storage), not only a header.
      session,
    };
    const auth = tenant.auth;
    if (auth === undefined) return this.send(request, tenantRef);
    // Read when sent: a login may have replaced the session's jar and token.
    const asSession = async () =>
      session === undefined
        ? request
        : {
            ...request,
            headers: { ...headers, ...(await this.authenticator.requestHeaders(session, auth, data.url, data.method)) },
            cookieJar: session.jar,
          };
    if (session !== undefined) await this.authenticator.beforeFetch(session, tenantRef, auth);
    // The login this request is sent with: a newer one, written by any worker, settles a renewal.
    const seen = session?.auth?.changedAt;
    const page = await this.send(await asSession(), tenantRef);
    const sign = this.authenticator.loggedOut(page, auth, data.url);
    if (sign === undefined) return page;
    // A rendered page that said "log in" is done with (its cookies back in the jar) before the login.
    await page.rendered?.close();
    if (session === undefined) throw stillLoggedOut(page, tenant, 'the page needs a login, and the job has no session');
    const renewal = await this.authenticator.renewAfter(session, tenantRef, auth, sign, seen);
    if (renewal === 'logged_in_just_now')
      throw stillLoggedOut(page, tenant, 'the session logged in moments ago and the page still says it is logged out');
    const again = await this.send(await asSession(), tenantRef);
    if (this.authenticator.loggedOut(again, auth, data.url) !== undefined) {
      await again.rendered?.close();
      throw stillLoggedOut(again, tenant, 'the session is still logged out after logging in');
    }
    return again;
  }

  /**
   * One request of the job. A 403 or 429 that came through a proxy, whatever the job then does
   * with it (logs in again, backs off, quarantines the session), also counts towards the proxy's
   * health: a proxy the site blocks is marked down for the fleet.
   */
  private async send(request: FetchRequest, tenantRef: FetchTenant): Promise<FetchedPage> {
    const page = await (this.deps.pages ?? this.deps.fetcher).fetch(request, tenantRef);
    if (tenantRef.proxy !== undefined && isBlockedAnswer(page.status))
      await this.deps.proxyHealth?.recordBlocked(tenantRef.proxy.id);
    return page;
  }

  /**
   * The proxy of this job's request: the session's (the one its profile names, else the one its
   * name picks, the same on every worker), or the pool's next for a job without a session.
   */
  private proxyFor(
    data: FetchJob,
    tenant: TenantConfig,
    session: JobSession | undefined,
    host: string,
  ): ProxyEndpoint | undefined {
    const plan = this.proxies.of(data.tenant, tenant.proxy);
    if (plan === undefined) return undefined;
    const isDown = this.isProxyDown;
    if (session === undefined || data.sessionId === undefined) return plan.forRequest(host, isDown);
    return plan.forSession(host, data.tenant, data.sessionId, session.profile?.proxy, isDown);
  }

  private readonly isProxyDown = (proxy: string): boolean => this.deps.proxyHealth?.isDown(proxy) ?? false;

  /**
   * The proxy of this job's request. A session that goes through proxies and has no profile yet
   * (a new one, or one just moved off a proxy that went down) first stores a profile naming the
   * proxy it picks, with this worker's view of which proxies are down read afresh: of its jobs
   * that get here at once, on any worker, the first's profile stands, and every request of the
   * session goes through the proxy it names.
   */
  private async proxyOf(
    data: FetchJob,
    tenant: TenantConfig,
    session: JobSession | undefined,
    host: string,
  ): Promise<ProxyEndpoint | undefined> {
    const picked = this.proxyFor(data, tenant, session, host);
    if (picked === undefined || session === undefined || session.profile !== undefined) return picked;
    // Unread, the view is at most a second old; a session is bound once, so read it now.
    await this.deps.proxyHealth?.refresh().catch(() => undefined);
    await this.identities.claim(data, tenant, session, this.proxyFor(data, tenant, session, host));
    return this.proxyFor(data, tenant, session, host);
  }

  /**
   * A session whose proxy is down for the fleet moves to another, as a new identity: its cookies,
   * login and profile are burnt (by the first of its jobs to get here; `JobSession.rebind`) and
   * its jobs wait a moment, no attempt spent, then start fresh on the proxy its name now picks. Its
   * jobs in flight through the old proxy fail as proxy_unreachable and are retried on the new one.
   */
  private async rotateIfProxyDown(
    job: Job,
    data: FetchJob,
    tenant: TenantConfig,
    session: JobSession | undefined,
    host: string,
  ): Promise<JobVerdict | undefined> {
    const bound = session?.profile?.proxy;
    if (session === undefined || bound === undefined || !this.isProxyDown(bound)) return undefined;
    let next: ProxyEndpoint | undefined;
    try {
      next = this.proxyFor(data, tenant, session, host);
    } catch {
      return undefined; // A missing secret fails the job on its way to the fetch.
    }
    if (next === undefined || next.id === bound) return undefined;
    if (await session.rebind()) {
      this.deps.logger.info(
        { job_id: job.id, tenant: data.tenant, session_id: session.hashedId, from: bound, to: next.id },
        'session moved to another proxy with a fresh identity',
      );
      await this.deps.audit.append({
        kind: 'proxy_rotated',
        ...auditSubject(job, data, this.deps.sessions.hasher),
        reason: 'proxy_down',
        detail: { from: bound, to: next.id },
      });
    }
    return { kind: 'hold', waitMs: ROTATION_WAIT_MS, reason: 'proxy_rotation' };
  }

  /**
   * A WAF or CAPTCHA challenge, or rate limiting past the threshold: the session's state is
   * burnt (flushed and quarantined), and people are told: an error log line with `alert: true`,
   * a counter, and an audit event. The page is not retried.
   */
  private async raiseComplianceAlert(
    job: Job,
    data: FetchJob,
    failure: Classification,
    session: JobSession | undefined,
  ): Promise<void> {
    await session?.quarantine();
    this.deps.logger.error(
      {
        alert: true,
        job_id: job.id,
        tenant: data.tenant,
        session_id: session?.hashedId,
        reason: failure.reason,
        status: failure.status,
        ...(failure.retryAfterMs === undefined ? {} : { retry_after_s: Math.round(failure.retryAfterMs / 1000) }),
        quarantined: session !== undefined,
      },
      failure.reason === 'retry_after_too_long'
        ? 'compliance block: the site asked to wait longer than the tenant allows (Retry-After)'
        : 'compliance block: the site challenged the crawler',
    );
    if (session !== undefined) {
      await this.deps.audit.append({
        kind: 'quarantine',
        ...auditSubject(job, data, this.deps.sessions.hasher),
        reason: failure.reason,
      });
    }
  }

  /**
   * Commits the session: the session stage's cleanup. Only a workflow that moved on meanwhile
   * fails the job (it read stale state): that failure comes back. A commit that keeps meeting a
   * newer login is logged, and the job's own outcome stands.
   */
  private async commitSession(session: JobSession | undefined, job: Job): Promise<Failure | undefined> {
    if (session === undefined) return undefined;
    try {
      await inSpan('session.commit', {}, () => session.commit());
      return undefined;
    } catch (error) {
      if (!(error instanceof CrawlFailure)) throw error;
      if (error.reason === 'workflow_conflict')
        return { classification: { failureClass: error.failureClass, reason: error.reason }, message: error.message };
      this.deps.logger.warn({ job_id: job.id, session_id: session.hashedId, reason: error.reason }, error.message);
      return undefined;
    }
  }
}

/** A failed job's verdict. */
function failed(data: FetchJob | undefined, classification: Classification, message: string): JobVerdict {
  return { kind: 'failed', data, failure: { classification, message } };
}

/** A surprise (Redis trouble or a bug) as a verdict: retried like a network failure. */
function internalFailure(job: Job, error: unknown): JobVerdict {
  const parsed = parseFetchJob(job.data);
  return failed(
    parsed.ok ? parsed.job : undefined,
    { failureClass: 'recoverable', reason: 'internal_error' },
    error instanceof Error ? error.message : String(error),
  );
}

/** A page that still says "log in": `auth_failed`, never stored as the page. */
function stillLoggedOut(page: FetchedPage, tenant: TenantConfig, why: string): CrawlFailure {
  return new CrawlFailure(
    { failureClass: 'non_recoverable', reason: 'auth_failed', status: page.status },
    `${why}: HTTP ${page.status} from ${page.finalUrl}`,
    responseSummary(page, tenant),
  );
}
