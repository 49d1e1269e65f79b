import type { AuditLog } from '@crawlfleet/audit';
import { SessionBreakers } from '@crawlfleet/breakers';
import {
  type CrawlfleetConfig,
  type FetchJob,
  InputError,
  type KeyLayout,
  parseFetchJob,
  parseTargetUrl,
  type TenantConfig,
  tenantConfig,
} from '@crawlfleet/core';
import type { AttemptRecord, DeadLetter, DeadLetterQueue } from '@crawlfleet/dlq';
import {
  type Classification,
  CrawlFailure,
  classifyError,
  classifyResponse,
  NonRecoverableError,
  type ResponseSummary,
  retryDelay,
} from '@crawlfleet/failures';
import type { FetchedPage, Fetcher } from '@crawlfleet/fetcher';
import type { Logger } from '@crawlfleet/log';
import { type HostPacer, type RobotsCache, RobotsUnavailableError } from '@crawlfleet/politeness';
import { encodeBody, pickStoredHeaders, type ResultsStore, type StoredResult } from '@crawlfleet/results';
import {
  buildLoginRequest,
  hashSessionId,
  type JobSession,
  reauthenticate,
  type SessionManager,
} from '@crawlfleet/sessions';
import { DelayedError, type Job, type Queue, UnrecoverableError } from 'bullmq';

/** What a finished job returns (BullMQ keeps it as the job's return value). */
export interface JobOutcome {
  outcome: 'stored' | 'duplicate';
  status?: number;
  entryId?: string;
}

/** Thrown for a recoverable failure with attempts left; carries the delay it chose. */
export class RetryLaterError extends Error {
  override readonly name = 'RetryLaterError';

  constructor(
    message: string,
    readonly backoffMs: number,
    readonly classification: Classification,
  ) {
    super(message);
  }
}

/** Thrown after a job was routed to the DLQ: BullMQ fails it without retrying. */
export class DeadLetteredError extends UnrecoverableError {
  override readonly name = 'DeadLetteredError';

  constructor(readonly letter: DeadLetter) {
    super(`${letter.class}/${letter.reason}: ${letter.message}`);
  }
}

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
  logger: Logger;
}

/**
 * What one job does: check its payload, skip it when its key already finished, fetch, classify,
 * then either write the result and ledger mark in one step, schedule a retry, or route it to the
 * DLQ before the job is failed (so a crash in between cannot lose the DLQ entry).
 */
export class CrawlProcessor {
  /** This worker's breakers, one per session; their trips are shared with the fleet. */
  readonly breakers: SessionBreakers;

  constructor(private readonly deps: CrawlProcessorDeps) {
    const { failureThreshold, resetTimeoutMs, maxSessionsPerWorker } = deps.config.breakers;
    this.breakers = new SessionBreakers(
      { failureThreshold, resetTimeoutMs, maxSessions: maxSessionsPerWorker },
      (sessionKey) => {
        const slash = sessionKey.indexOf('/');
        void this.openBreaker(sessionKey.slice(0, slash), sessionKey.slice(slash + 1), 'failure_threshold');
      },
    );
  }

  /** Opens a session's breaker for the whole fleet, and says so. */
  private async openBreaker(tenant: string, sessionId: string, reason: string): Promise<void> {
    const until = Date.now() + this.deps.config.breakers.resetTimeoutMs;
    try {
      await this.deps.sessions.store?.openBreaker(this.deps.keys.session(tenant, sessionId), until);
    } catch (error) {
      this.deps.logger.warn({ err: (error as Error).message }, 'could not publish an open breaker');
    }
    const session = hashSessionId(tenant, sessionId);
    this.deps.logger.warn(
      { tenant, session_id: session, reason, open_until: new Date(until).toISOString() },
      'session breaker open',
    );
    await this.deps.audit.append({
      kind: 'breaker_open',
      tenant,
      session,
      reason,
      detail: { until: new Date(until).toISOString() },
    });
  }

  /**
   * After an attempt of a session's job: a probe decides for the fleet (close, or open again);
   * any other attempt feeds this worker's breaker. Answers that only concern the page (404) or a
   * compliance block (handled by quarantine) say nothing of the session's health.
   */
  private async recordHealth(
    job: Job,
    data: FetchJob,
    session: JobSession | undefined,
    probing: boolean,
    failure: Classification | undefined,
  ): Promise<void> {
    if (session === undefined || session.ephemeral) return;
    const healthy = failure === undefined || failure.failureClass !== 'recoverable';
    const sessionKey = `${data.tenant}/${session.keys.sessionId}`;
    if (!probing) {
      this.breakers.record(sessionKey, healthy);
      return;
    }
    if (healthy) {
      await session.store?.closeBreaker(session.keys);
      this.breakers.reset(sessionKey);
      this.deps.logger.info(
        { job_id: job.id, tenant: data.tenant, session_id: session.hashedId },
        'session breaker closed',
      );
      await this.deps.audit.append({ kind: 'breaker_closed', ...auditSubject(job, data), reason: 'probe_succeeded' });
    } else {
      await this.openBreaker(data.tenant, session.keys.sessionId, `probe_failed:${failure?.reason}`);
    }
  }

  /** `token` is the worker's lock token: with it, a job that is too early moves to delayed. */
  async process(job: Job, token?: string): Promise<JobOutcome> {
    try {
      return await this.run(job, token);
    } catch (error) {
      if (error instanceof RetryLaterError || error instanceof DeadLetteredError || error instanceof DelayedError)
        throw error;
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
    if (await this.deps.results.isFinished(data.idempotencyKey)) return { outcome: 'duplicate' };

    const session =
      data.sessionId === undefined
        ? undefined
        : await this.deps.sessions.open(this.deps.keys.session(data.tenant, data.sessionId));
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
    const breakerWasOpen = await this.holdWhileBreakerOpen(job, token, session);
    await this.politely(job, token, data, tenant, target, attempt);
    // The probe is taken only by a job that is about to fetch, so a paced job cannot sit on it.
    const probing = breakerWasOpen && (await this.takeBreakerProbe(job, token, data, session));

    let page: FetchedPage;
    try {
      page = await this.fetch(data, tenant, session);
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
      session?.recordError();
      await this.recordHealth(job, data, session, probing, classification);
      await this.commitSession(session, job, data, attempt);
      return this.fail(job, data, classification, (error as Error).message, attempt);
    }

    const snippet = page.body.subarray(0, SNIPPET_BYTES).toString('utf8');
    let failure = classifyResponse({ status: page.status, headers: page.headers, bodySnippet: snippet });
    if (failure?.status === 429 && failure.failureClass === 'recoverable' && (await session?.rateLimitedTooOften())) {
      failure = { failureClass: 'compliance_blocked', reason: 'rate_limited_repeatedly', status: 429 };
    }
    if (failure?.status === 429) {
      // The whole fleet backs off this host, not only this job.
      await this.deps.pacer.slowDown(
        target.host,
        Date.now() + (failure.retryAfterMs ?? this.deps.config.jobs.backoffBaseMs),
      );
    }
    if (failure !== undefined) session?.recordError();
    if (failure?.failureClass === 'compliance_blocked') await this.raiseComplianceAlert(job, data, failure, session);
    await this.recordHealth(job, data, session, probing, failure);
    await this.commitSession(session, job, data, attempt);
    if (failure !== undefined) {
      const summary: ResponseSummary = {
        status: page.status,
        headers: pickStoredHeaders(page.headers),
        bodySnippet: snippet,
      };
      return this.fail(job, data, failure, `HTTP ${page.status} from ${page.finalUrl}`, attempt, summary);
    }
    return this.store(job, data, page, attempt);
  }

  /**
   * Fetches with the session's jar. A 401, or a 403 that is not a challenge, runs the tenant's
   * re-auth hook once (single-flight across the fleet) and fetches again.
   */
  private async fetch(data: FetchJob, tenant: TenantConfig, session: JobSession | undefined): Promise<FetchedPage> {
    const tenantRef = { name: data.tenant, config: tenant };
    // A session keeps one user agent for life, so a site never sees its identity change.
    const profile = session?.ensureProfile(() => ({
      userAgent: tenant.userAgent ?? this.deps.config.fetch.userAgent,
      createdAt: new Date().toISOString(),
    }));
    if (profile !== undefined) data = { ...data, headers: { 'user-agent': profile.userAgent, ...data.headers } };
    const page = await this.deps.fetcher.fetch({ ...data, cookieJar: session?.jar }, tenantRef);
    const login = tenant.auth?.login;
    if (session === undefined || login === undefined || !needsLogin(page)) return page;
    await reauthenticate(
      session,
      async () => {
        const request = buildLoginRequest(login);
        const answer = await this.deps.fetcher.fetch({ ...request, cookieJar: session.jar }, tenantRef);
        if (answer.status >= 400)
          throw new NonRecoverableError('login_failed', `the login hook answered HTTP ${answer.status}`, {
            status: answer.status,
          });
      },
      {
        ttlSeconds: tenant.auth?.ttlSeconds ?? 0,
        // The lease must outlive the slowest login, or a second worker logs in alongside.
        leaseMs: Math.max(this.deps.config.sessions.reauthLeaseMs, this.deps.config.fetch.timeoutMs + 5_000),
      },
    );
    return this.deps.fetcher.fetch({ ...data, cookieJar: session.jar }, tenantRef);
  }

  /**
   * robots.txt and the host's pace, for the whole fleet. A disallowed URL goes to the DLQ without
   * being fetched; an unreadable robots.txt retries the job later; a job that comes before the
   * host's next-allowed time moves to delayed without spending an attempt.
   */
  private async politely(
    job: Job,
    token: string | undefined,
    data: FetchJob,
    tenant: TenantConfig,
    target: URL,
    attempt: number,
  ): Promise<void> {
    const tenantRef = { name: data.tenant, config: tenant };
    let crawlDelayMs = 0;
    if (tenant.robots === 'respect') {
      const userAgent = tenant.userAgent ?? this.deps.config.fetch.userAgent;
      try {
        const verdict = await this.deps.robots.check(data.url, userAgent, async (robotsUrl) => {
          try {
            const page = await this.deps.fetcher.fetch({ url: robotsUrl, method: 'GET' }, tenantRef);
            return { status: page.status, body: page.body.toString('utf8') };
          } catch (error) {
            const permanent = classifyError(error).failureClass === 'non_recoverable';
            return permanent ? { unusable: error as Error } : { error: error as Error };
          }
        });
        if (!verdict.allowed) {
          await this.deadLetter(
            job,
            data,
            { failureClass: 'non_recoverable', reason: 'robots_disallowed' },
            `robots.txt of ${target.origin} disallows ${target.pathname}`,
            attempt,
          );
        }
        crawlDelayMs = verdict.crawlDelayMs ?? 0;
      } catch (error) {
        if (!(error instanceof RobotsUnavailableError)) throw error;
        await this.fail(
          job,
          data,
          { failureClass: 'recoverable', reason: 'robots_unavailable' },
          error.message,
          attempt,
        );
      }
    }
    const waitMs = await this.deps.pacer.reserve(target.host, Math.max(tenant.hostDelayMs, crawlDelayMs));
    if (waitMs > 0) await this.holdBack(job, token, waitMs, 'host_paced');
  }

  /**
   * A session whose breaker is open waits, on every worker, without spending attempts. Returns
   * true when the breaker was open and its open period is over: the job may become the probe.
   */
  private async holdWhileBreakerOpen(
    job: Job,
    token: string | undefined,
    session: JobSession | undefined,
  ): Promise<boolean> {
    const openUntil = session?.breakerOpenUntil;
    if (openUntil === undefined) return false;
    const now = Date.now();
    if (now < openUntil) await this.holdBack(job, token, openUntil - now + Math.random() * 250, 'breaker_open');
    return true;
  }

  /** One job across the fleet probes a half-open breaker; the others wait a little more. */
  private async takeBreakerProbe(
    job: Job,
    token: string | undefined,
    data: FetchJob,
    session: JobSession | undefined,
  ): Promise<boolean> {
    if (
      session !== undefined &&
      (await session.store?.tryBreakerProbe(session.keys, this.deps.config.fetch.timeoutMs + 5_000))
    ) {
      await this.deps.audit.append({ kind: 'breaker_half_open', ...auditSubject(job, data), reason: 'probe' });
      return true;
    }
    return this.holdBack(job, token, 250 + Math.random() * 250, 'breaker_half_open');
  }

  /** Moves the job to delayed for `waitMs` without spending an attempt (it never sleeps in a slot). */
  private async holdBack(job: Job, token: string | undefined, waitMs: number, reason: string): Promise<never> {
    if (token === undefined) {
      throw new RetryLaterError(`held back (${reason}) for ${Math.round(waitMs)} ms`, waitMs, {
        failureClass: 'recoverable',
        reason,
      });
    }
    await job.moveToDelayed(Date.now() + Math.round(waitMs), token);
    throw new DelayedError();
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
        quarantined: session !== undefined,
      },
      'compliance block: the site challenged the crawler',
    );
    if (session !== undefined) {
      await this.deps.audit.append({ kind: 'quarantine', ...auditSubject(job, data), reason: failure.reason });
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
      await session.commit();
    } catch (error) {
      if (!(error instanceof CrawlFailure)) throw error;
      if (error.reason === 'workflow_conflict') {
        await this.fail(job, data, { failureClass: error.failureClass, reason: error.reason }, error.message, attempt);
      }
      this.deps.logger.warn({ job_id: job.id, session_id: session.hashedId, reason: error.reason }, error.message);
    }
  }

  private async store(job: Job, data: FetchJob, page: FetchedPage, attempt: number): Promise<JobOutcome> {
    const contentType = page.headers['content-type'];
    const result: StoredResult = {
      url: data.url,
      finalUrl: page.finalUrl,
      status: page.status,
      headers: pickStoredHeaders(page.headers),
      ...encodeBody(page.body, contentType, this.deps.config.fetch.resultBodyBytes),
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
    const { written, entryId } = await this.deps.results.write(result);
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
          retry_attempt: attempt,
          backoff_duration_ms: backoffMs,
          error_class: classification.failureClass,
          reason: classification.reason,
        },
        'fetch failed; retrying',
      );
      await this.deps.audit.append({
        kind: 'retry',
        ...auditSubject(job, data),
        reason: classification.reason,
        detail: {
          attempt,
          backoffMs,
          ...(classification.status === undefined ? {} : { status: classification.status }),
        },
      });
      throw new RetryLaterError(message, backoffMs, classification);
    }
    const exhausted = classification.failureClass === 'recoverable';
    const final = exhausted
      ? {
          ...classification,
          failureClass: 'non_recoverable' as const,
          reason: `retries_exhausted:${classification.reason}`,
        }
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
    await this.deps.dlq.route(letter);
    await this.deps.audit.append({
      kind: 'dlq',
      ...auditSubject(job, data),
      url: letter.url ?? undefined,
      reason: `${letter.class}/${letter.reason}`,
      detail: { attempts: attempt },
    });
    this.deps.logger.info(
      { job_id: job.id, tenant: letter.tenant, error_class: letter.class, reason: letter.reason, attempts: attempt },
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

/** Who an audit event is about: the job, its tenant, and its session by hashed id only. */
function auditSubject(job: Job, data: FetchJob | undefined) {
  return {
    jobId: String(job.id),
    tenant: data?.tenant,
    session: data?.sessionId === undefined ? undefined : hashSessionId(data.tenant, data.sessionId),
    url: data?.url,
  };
}

/** A 401, or a 403 that is not a WAF or CAPTCHA challenge: the session may need to log in. */
function needsLogin(page: FetchedPage): boolean {
  if (page.status === 401) return true;
  if (page.status !== 403) return false;
  const snippet = page.body.subarray(0, SNIPPET_BYTES).toString('utf8');
  return (
    classifyResponse({ status: 403, headers: page.headers, bodySnippet: snippet })?.failureClass !==
    'compliance_blocked'
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
