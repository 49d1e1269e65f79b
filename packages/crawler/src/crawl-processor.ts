import type { AuditLog } from '@crawlfleet/audit';
import { isLoginFailure, LoginCoolingDownError, SessionAuthenticator } from '@crawlfleet/auth';
import {
  type CrawlfleetConfig,
  type CrawlObserver,
  type FetchJob,
  InputError,
  type KeyLayout,
  parseFetchJob,
  parseTargetUrl,
  redactPii,
  redactPiiDeep,
  type TenantConfig,
  tenantConfig,
} from '@crawlfleet/core';
import type { AttemptRecord, DeadLetter, DeadLetterQueue } from '@crawlfleet/dlq';
import {
  type Classification,
  CrawlFailure,
  classifyError,
  classifyResponse,
  type ResponseSummary,
  retryDelay,
} from '@crawlfleet/failures';
import type { FetchedPage, Fetcher } from '@crawlfleet/fetcher';
import type { Logger } from '@crawlfleet/log';
import type { HostPacer, RobotsCache } from '@crawlfleet/politeness';
import { encodeBody, pickStoredHeaders, type ResultsStore, type StoredResult } from '@crawlfleet/results';
import type { JobSession, SessionManager } from '@crawlfleet/sessions';
import { contextOf, inSpan, SpanKind, type TraceCarrier } from '@crawlfleet/tracing';
import { DelayedError, type Job, type Queue } from 'bullmq';
import { auditSubject } from './audit-subject.js';
import { BreakerGate } from './breaker-gate.js';
import { holdBack } from './hold-back.js';
import { DeadLetteredError, type JobOutcome, RetryLaterError } from './job-errors.js';
import { PolitenessGate } from './politeness-gate.js';

const SNIPPET_BYTES = 2048;

export interface CrawlProcessorDeps {
  config: CrawlfleetConfig;
  keys: KeyLayout;
  fetcher: Fetcher;
  results: ResultsStore;
  dlq: DeadLetterQueue;
  /** The crawl queue, to read a job's recorded attempts. */
  queue: Queue;
  sessions: SessionManager;
  audit: AuditLog;
  robots: RobotsCache;
  pacer: HostPacer;
  /** Where the crawl path reports what it does (metrics); optional. */
  observer?: CrawlObserver | undefined;
  logger: Logger;
}

/**
 * What one job does: check its payload, skip it when its key already finished, fetch, classify,
 * then either write the result and ledger mark in one step, schedule a retry, or route it to the
 * DLQ before the job is failed (so a crash in between cannot lose the DLQ entry).
 */
export class CrawlProcessor {
  private readonly breakerGate: BreakerGate;
  private readonly politeness: PolitenessGate;
  private readonly authenticator: SessionAuthenticator;

  constructor(private readonly deps: CrawlProcessorDeps) {
    this.breakerGate = new BreakerGate(deps);
    this.politeness = new PolitenessGate(deps);
    this.authenticator = new SessionAuthenticator({
      fetcher: deps.fetcher,
      // The lease must outlive the slowest login (a refused refresh, the login page and its form
      // are three requests), or a second worker logs in alongside.
      leaseMs: Math.max(deps.config.sessions.reauthLeaseMs, 3 * deps.config.fetch.timeoutMs + 5_000),
      logger: deps.logger,
      observer: deps.observer,
    });
  }

  /** Stops this worker's breaker timers (on drain). */
  shutdown(): void {
    this.breakerGate.shutdown();
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
      () => this.processInSpan(job, token),
    );
  }

  private async processInSpan(job: Job, token?: string): Promise<JobOutcome> {
    try {
      return await this.run(job, token);
    } catch (error) {
      if (error instanceof DelayedError) {
        this.deps.observer?.jobFinished?.('held_back', undefined, undefined);
        throw error;
      }
      if (error instanceof RetryLaterError || error instanceof DeadLetteredError) throw error;
      // Redis trouble or a bug: retried like a network failure and dead-lettered on the last
      // attempt, so no job ends failed without a DLQ entry while Redis can still take one.
      const parsed = parseFetchJob(job.data);
      return this.fail(
        job,
        parsed.ok ? parsed.job : undefined,
        { failureClass: 'recoverable', reason: 'internal_error' },
        (error as Error).message,
        job.attemptsMade + 1,
      );
    }
  }

  private async run(job: Job, token: string | undefined): Promise<JobOutcome> {
    const attempt = job.attemptsMade + 1;
    const parsed = parseFetchJob(job.data);
    if (!parsed.ok) {
      return this.deadLetter(
        job,
        undefined,
        { failureClass: 'non_recoverable', reason: 'invalid_payload' },
        parsed.reason,
        attempt,
      );
    }
    const data = parsed.job;
    let tenant: TenantConfig;
    try {
      tenant = tenantConfig(this.deps.config, data.tenant);
    } catch (error) {
      return this.deadLetter(
        job,
        data,
        { failureClass: 'non_recoverable', reason: 'unknown_tenant' },
        (error as Error).message,
        attempt,
      );
    }
    // Only a job that started before (a retry, a delayed job, or a re-run after a worker died
    // between the result write and the ack) or a replayed one can find its key finished: a plain
    // first start skips the command. The result write refuses a second result in any case.
    const mayBeFinished =
      job.attemptsMade > 0 || job.attemptsStarted > 1 || job.stalledCounter > 0 || data.replayedAt !== undefined;
    if (mayBeFinished && (await this.deps.results.isFinished(data.idempotencyKey))) {
      this.deps.observer?.jobFinished?.('duplicate', undefined, undefined);
      return { outcome: 'duplicate' };
    }

    const session =
      data.sessionId === undefined
        ? undefined
        : await inSpan('session.hydrate', {}, () =>
            this.deps.sessions.open(this.deps.keys.session(data.tenant, data.sessionId as string), {
              auth: tenant.auth?.login !== undefined,
            }),
          );
    if (session?.quarantined) {
      const blocked = { failureClass: 'compliance_blocked' as const, reason: 'session_quarantined' };
      return this.deadLetter(job, data, blocked, 'the session is quarantined after a compliance block', attempt);
    }
    let target: URL;
    try {
      target = parseTargetUrl(data.url);
    } catch (error) {
      const reason = error instanceof InputError ? error.code : 'invalid_url';
      return this.deadLetter(job, data, { failureClass: 'non_recoverable', reason }, (error as Error).message, attempt);
    }
    const breakerWasOpen = await this.breakerGate.holdWhileOpen(job, token, session);
    const refusal = await this.politeness.admit(job, token, data, tenant, target);
    if (refusal !== undefined) return this.fail(job, data, refusal.classification, refusal.message, attempt);
    // The probe is taken only by a job that is about to fetch, so a paced job cannot sit on it.
    const probing = breakerWasOpen && (await this.breakerGate.takeProbe(job, token, data, session));

    let page: FetchedPage;
    try {
      page = await inSpan(
        'http.fetch',
        { kind: SpanKind.INTERNAL, attributes: { 'http.request.method': data.method, 'url.full': data.url } },
        async (span) => {
          const fetched = await this.fetch(data, tenant, session);
          span.setAttribute('http.response.status_code', fetched.status);
          return fetched;
        },
      );
    } catch (error) {
      const classification =
        error instanceof CrawlFailure
          ? {
              failureClass: error.failureClass,
              reason: error.reason,
              status: error.status,
              retryAfterMs: error.retryAfterMs,
            }
          : classifyError(error);
      // A redirect target's robots.txt (refusing, or down) and a refused login say nothing about
      // the session's health: they must not count towards its breaker (a refused login has its
      // own cool-down). A probe left undecided expires.
      if (!classification.reason.startsWith('robots_') && !isLoginFailure(classification.reason)) {
        session?.recordError();
        await this.breakerGate.recordHealth(job, data, session, probing, classification);
      }
      await this.commitSession(session, job, data, attempt);
      if (error instanceof LoginCoolingDownError) return holdBack(job, token, error.waitMs, 'auth_cooldown');
      const response = error instanceof CrawlFailure ? error.response : undefined;
      return this.fail(job, data, classification, (error as Error).message, attempt, response);
    }

    this.deps.observer?.fetched?.(page.status, page.durationMs);
    const snippet = page.body.subarray(0, SNIPPET_BYTES).toString('utf8');
    let failure = classifyResponse({ status: page.status, headers: page.headers, bodySnippet: snippet });
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
    if (failure !== undefined) session?.recordError();
    if (failure?.failureClass === 'compliance_blocked') await this.raiseComplianceAlert(job, data, failure, session);
    await this.breakerGate.recordHealth(job, data, session, probing, failure);
    await this.commitSession(session, job, data, attempt);
    if (failure !== undefined) {
      const summary = responseSummary(page, tenant);
      const message =
        failure.reason === 'retry_after_too_long'
          ? `HTTP ${page.status} from ${page.finalUrl} asks to wait ${Math.round((failure.retryAfterMs ?? 0) / 1000)} s (Retry-After), more than the tenant's maxRetryAfterSeconds of ${tenant.maxRetryAfterSeconds}`
          : `HTTP ${page.status} from ${page.finalUrl}`;
      return this.fail(job, data, failure, message, attempt, summary);
    }
    return this.store(job, data, tenant, page, attempt);
  }

  /**
   * Fetches as the session: its jar, user agent and login. A login about to expire is renewed
   * first; a page that says the session is logged out (401, a 403 that is not a challenge, the
   * login page, the tenant's signs) logs it in once across the fleet and is fetched again. A
   * login page is never returned as the page: it fails the job as `auth_failed`.
   */
  private async fetch(data: FetchJob, tenant: TenantConfig, session: JobSession | undefined): Promise<FetchedPage> {
    const tenantRef = { name: data.tenant, config: tenant };
    // A session keeps one user agent for life, so a site never sees its identity change.
    const profile = session?.ensureProfile(() => ({
      userAgent: tenant.userAgent ?? this.deps.config.fetch.userAgent,
      createdAt: new Date().toISOString(),
    }));
    const headers = profile === undefined ? data.headers : { 'user-agent': profile.userAgent, ...data.headers };
    const request = {
      url: data.url,
      method: data.method,
      body: data.body,
      headers,
      cookieJar: session?.jar,
      // robots.txt is asked about every redirect target too, not only the job's URL.
      beforeHop: this.politeness.hopCheck(data.tenant, tenant),
    };
    const auth = tenant.auth;
    if (auth === undefined) return this.deps.fetcher.fetch(request, tenantRef);
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
    const page = await this.deps.fetcher.fetch(await asSession(), tenantRef);
    const sign = this.authenticator.loggedOut(page, auth, data.url);
    if (sign === undefined) return page;
    if (session === undefined) throw stillLoggedOut(page, tenant, 'the page needs a login, and the job has no session');
    const renewal = await this.authenticator.renewAfter(session, tenantRef, auth, sign, seen);
    if (renewal === 'logged_in_just_now')
      throw stillLoggedOut(page, tenant, 'the session logged in moments ago and the page still says it is logged out');
    const again = await this.deps.fetcher.fetch(await asSession(), tenantRef);
    if (this.authenticator.loggedOut(again, auth, data.url) !== undefined)
      throw stillLoggedOut(again, tenant, 'the session is still logged out after logging in');
    return again;
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
   * Commits the session. Only a workflow that moved on fails the job (it read stale state); a
   * commit that keeps meeting newer versions is logged and the job's own outcome stands.
   */
  private async commitSession(
    session: JobSession | undefined,
    job: Job,
    data: FetchJob,
    attempt: number,
  ): Promise<void> {
    if (session === undefined) return;
    try {
      await inSpan('session.commit', {}, () => session.commit());
    } catch (error) {
      if (!(error instanceof CrawlFailure)) throw error;
      if (error.reason === 'workflow_conflict') {
        await this.fail(job, data, { failureClass: error.failureClass, reason: error.reason }, error.message, attempt);
      }
      this.deps.logger.warn({ job_id: job.id, session_id: session.hashedId, reason: error.reason }, error.message);
    }
  }

  private async store(
    job: Job,
    data: FetchJob,
    tenant: TenantConfig,
    page: FetchedPage,
    attempt: number,
  ): Promise<JobOutcome> {
    const contentType = page.headers['content-type'];
    const body = encodeBody(page.body, contentType, this.deps.config.fetch.resultBodyBytes);
    // Binary bodies are kept as they are: the patterns are for text.
    if (tenant.redactPii && body.bodyEncoding === 'utf8') body.body = redactPii(body.body);
    const headers = pickStoredHeaders(page.headers);
    const result: StoredResult = {
      url: data.url,
      finalUrl: page.finalUrl,
      status: page.status,
      headers: tenant.redactPii ? redactPiiDeep(headers) : headers,
      ...body,
      bodyBytes: page.bodyBytes,
      idempotencyKey: data.idempotencyKey,
      jobId: String(job.id),
      tenant: data.tenant,
      sessionId: data.sessionId ?? null,
      attempts: attempt,
      redirects: page.redirects,
      durationMs: Math.round(page.durationMs),
      fetchedAt: new Date().toISOString(),
    };
    const { written, entryId } = await inSpan('result.write', {}, () => this.deps.results.write(result));
    this.deps.observer?.jobFinished?.(written ? 'stored' : 'duplicate', undefined, undefined);
    this.deps.logger.debug(
      {
        job_id: job.id,
        tenant: data.tenant,
        status: page.status,
        attempts: attempt,
        duration_ms: result.durationMs,
        written,
      },
      'page stored',
    );
    if (attempt > 1) this.deps.observer?.retryEnded?.(true);
    return { outcome: written ? 'stored' : 'duplicate', status: page.status, entryId };
  }

  private async fail(
    job: Job,
    data: FetchJob | undefined,
    classification: Classification,
    message: string,
    attempt: number,
    response?: ResponseSummary,
  ): Promise<never> {
    const maxAttempts = job.opts.attempts ?? 1;
    if (classification.failureClass === 'recoverable' && attempt < maxAttempts) {
      const { backoffBaseMs, backoffMaxMs } = this.deps.config.jobs;
      const backoffMs = retryDelay(
        attempt,
        { baseMs: backoffBaseMs, maxMs: backoffMaxMs },
        classification.retryAfterMs,
      );
      await job.log(JSON.stringify(attemptRecord(attempt, classification, message, backoffMs)));
      this.deps.logger.warn(
        {
          job_id: job.id,
          tenant: data?.tenant,
          session_id: auditSubject(job, data, this.deps.sessions.hasher).session,
          retry_attempt: attempt,
          backoff_duration_ms: backoffMs,
          error_class: classification.failureClass,
          reason: classification.reason,
        },
        'fetch failed; retrying',
      );
      await this.deps.audit.append({
        kind: 'retry',
        ...auditSubject(job, data, this.deps.sessions.hasher),
        reason: classification.reason,
        detail: {
          attempt,
          backoffMs,
          ...(classification.status === undefined ? {} : { status: classification.status }),
        },
      });
      this.deps.observer?.retryScheduled?.(backoffMs);
      this.deps.observer?.jobFinished?.('retrying', classification.failureClass, classification.reason);
      throw new RetryLaterError(message, backoffMs, classification);
    }
    // Retries ran out: the entry keeps the failure's class (a person may replay recoverable
    // failures later), and says so in its reason.
    const final =
      classification.failureClass === 'recoverable'
        ? { ...classification, reason: `retries_exhausted:${classification.reason}` }
        : classification;
    return this.deadLetter(job, data, final, message, attempt, response, classification);
  }

  private async deadLetter(
    job: Job,
    data: FetchJob | undefined,
    classification: Classification,
    message: string,
    attempt: number,
    response?: ResponseSummary,
    lastAttempt: Classification = classification,
  ): Promise<never> {
    const history = await this.history(job);
    history.push(attemptRecord(attempt, lastAttempt, message));
    const raw = job.data as Partial<FetchJob> | undefined;
    const letter: DeadLetter = {
      id: String(job.id),
      url: data?.url ?? (typeof raw?.url === 'string' ? raw.url : null),
      class: classification.failureClass,
      reason: classification.reason,
      message,
      attempts: attempt,
      failedAt: new Date().toISOString(),
      tenant: data?.tenant ?? null,
      sessionId: data?.sessionId ?? null,
      job: job.data,
      history,
      lastResponse: response ?? null,
    };
    await inSpan('dlq.route', { attributes: { 'crawlfleet.reason': letter.reason } }, () =>
      this.deps.dlq.route(letter),
    );
    this.deps.observer?.jobFinished?.('dead_lettered', letter.class, letter.reason);
    if (attempt > 1) this.deps.observer?.retryEnded?.(false);
    await this.deps.audit.append({
      kind: 'dlq',
      ...auditSubject(job, data, this.deps.sessions.hasher),
      url: letter.url ?? undefined,
      reason: `${letter.class}/${letter.reason}`,
      detail: { attempts: attempt },
    });
    this.deps.logger.info(
      {
        job_id: job.id,
        tenant: letter.tenant,
        session_id: auditSubject(job, data, this.deps.sessions.hasher).session,
        error_class: letter.class,
        reason: letter.reason,
        attempts: attempt,
      },
      'job moved to the DLQ',
    );
    throw new DeadLetteredError(letter);
  }

  /** The attempts recorded so far (one job log line each); only read on the way to the DLQ. */
  private async history(job: Job): Promise<AttemptRecord[]> {
    if (job.attemptsMade === 0 || job.id === undefined) return [];
    const { logs } = await this.deps.queue.getJobLogs(job.id, 0, 99);
    return logs.flatMap((line) => {
      try {
        return [JSON.parse(line) as AttemptRecord];
      } catch {
        return [];
      }
    });
  }
}

/** What a person needs to see of a failed answer in its DLQ entry (redacted as results are). */
function responseSummary(page: FetchedPage, tenant: TenantConfig): ResponseSummary {
  const snippet = page.body.subarray(0, SNIPPET_BYTES).toString('utf8');
  const headers = pickStoredHeaders(page.headers);
  return {
    status: page.status,
    // Redacted as stored results are: a header may name a person (content-language, link).
    headers: tenant.redactPii ? redactPiiDeep(headers) : headers,
    bodySnippet: tenant.redactPii ? redactPii(snippet) : snippet,
  };
}

/** A page that still says "log in": `auth_failed`, never stored as the page. */
function stillLoggedOut(page: FetchedPage, tenant: TenantConfig, why: string): CrawlFailure {
  return new CrawlFailure(
    { failureClass: 'non_recoverable', reason: 'auth_failed', status: page.status },
    `${why}: HTTP ${page.status} from ${page.finalUrl}`,
    responseSummary(page, tenant),
  );
}

function attemptRecord(
  attempt: number,
  classification: Classification,
  error: string,
  backoffMs?: number,
): AttemptRecord {
  return {
    attempt,
    at: new Date().toISOString(),
    failureClass: classification.failureClass,
    reason: classification.reason,
    error,
    ...(classification.status === undefined ? {} : { status: classification.status }),
    ...(backoffMs === undefined ? {} : { backoffMs }),
  };
}
