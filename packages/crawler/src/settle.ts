import type { AuditLog } from '@crawlfleet/audit';
import type { BodyStore } from '@crawlfleet/bodies';
import { type CrawlfleetConfig, type CrawlObserver, type FetchJob, redactPii, redactPiiDeep } from '@crawlfleet/core';
import type { CrawlStore } from '@crawlfleet/crawls';
import type { AttemptRecord, DeadLetter, DeadLetterQueue } from '@crawlfleet/dlq';
import type { Classification } from '@crawlfleet/failures';
import type { Logger } from '@crawlfleet/log';
import { encodeBody, pickStoredHeaders, type ResultSink, type StoredResult } from '@crawlfleet/results';
import type { SessionHasher } from '@crawlfleet/sessions';
import { inSpan } from '@crawlfleet/tracing';
import { DelayedError, type Job, type Queue } from 'bullmq';
import { auditSubject } from './audit-subject.js';
import { placeBody } from './body-placement.js';
import { decide } from './decide.js';
import { DeadLetteredError, type JobOutcome, RetryLaterError } from './job-errors.js';
import type { Failure, JobVerdict } from './verdicts.js';

export interface SettleDeps {
  config: CrawlfleetConfig;
  results: ResultSink;
  /** Where bodies above `results.inlineBodyBytes` go; without one every body stays inline. */
  bodies?: BodyStore | undefined;
  dlq: DeadLetterQueue;
  /** The queue a job id is on (its shard's), to read a job's recorded attempts. */
  queueOf: (jobId: string) => Queue;
  audit: AuditLog;
  hasher: SessionHasher;
  observer?: CrawlObserver | undefined;
  logger: Logger;
  /** Told when a result write admitted links to the frontier (the mover enqueues them). */
  frontier?: { nudge(): void } | undefined;
  /** Named crawls' counts (dead-lettered pages). */
  crawls?: CrawlStore | undefined;
}

/**
 * A settled job: its return value, or the error that tells BullMQ what to do with it (move to
 * delayed, retry after the chosen backoff, fail without retrying).
 */
export type Settled = { outcome: JobOutcome } | { signal: Error };

/**
 * The one place a job's outcome is written: the result (and its ledger mark), or the DLQ entry,
 * or the retry's attempt record; the audit event, the log line and the metrics; and the signal
 * BullMQ gets. The stages before it only return what they found (`JobVerdict`).
 */
export class Settle {
  constructor(private readonly deps: SettleDeps) {}

  async settle(job: Job, token: string | undefined, verdict: JobVerdict): Promise<Settled> {
    const attempt = job.attemptsMade + 1;
    switch (verdict.kind) {
      case 'fetched':
        return { outcome: await this.store(job, verdict, attempt) };
      case 'duplicate':
        this.deps.observer?.jobFinished?.('duplicate', undefined, undefined);
        return { outcome: { outcome: 'duplicate' } };
      case 'cancelled':
        this.deps.observer?.jobFinished?.('cancelled', undefined, undefined);
        await this.deps.crawls?.countCancelled(verdict.crawl);
        return { outcome: { outcome: 'cancelled' } };
      case 'hold':
        return { signal: await this.hold(job, token, verdict.waitMs, verdict.reason) };
      case 'failed':
        return { signal: await this.fail(job, verdict.data, verdict.failure, attempt) };
    }
  }

  /** Writes the result and its ledger mark (one script; a key finished before writes nothing). */
  private async store(job: Job, verdict: Extract<JobVerdict, { kind: 'fetched' }>, attempt: number) {
    const { data, tenant, page, proxy, frontier } = verdict;
    const contentType = page.headers['content-type'];
    const body = encodeBody(page.body, contentType, this.deps.config.fetch.resultBodyBytes);
    // Binary bodies are kept as they are: the patterns are for text.
    if (tenant.redactPii && body.bodyEncoding === 'utf8') body.body = redactPii(body.body);
    const headers = pickStoredHeaders(page.headers);
    const { bodies } = this.deps;
    // Without a body store every body is inline: no await, no span on the hot path.
    const placed =
      bodies === undefined
        ? undefined
        : await inSpan('body.place', {}, () => placeBody(body, bodies, this.deps.config.results.inlineBodyBytes));
    // A rendered page's screenshot goes to the body store, never into Redis (the config insists on one).
    const screenshot =
      page.screenshot === undefined || bodies === undefined ? undefined : await bodies.put(page.screenshot);
    const result: StoredResult = {
      url: data.url,
      finalUrl: page.finalUrl,
      status: page.status,
      headers: tenant.redactPii ? redactPiiDeep(headers) : headers,
      ...body,
      ...placed,
      bodyBytes: page.bodyBytes,
      idempotencyKey: data.idempotencyKey,
      jobId: String(job.id),
      tenant: data.tenant,
      sessionId: data.sessionId ?? null,
      attempts: attempt,
      redirects: page.redirects,
      durationMs: Math.round(page.durationMs),
      fetchedAt: new Date().toISOString(),
      ...(proxy === undefined ? {} : { proxy }),
      ...(data.crawl === undefined ? {} : { crawl: data.crawl.name, depth: data.crawl.depth }),
      ...(page.rendered === undefined ? {} : { rendered: true }),
      ...(screenshot === undefined ? {} : { screenshotRef: screenshot.ref }),
    };
    const { written, entryId, admitted } = await inSpan('result.write', {}, () =>
      this.deps.results.write(result, frontier),
    );
    if (admitted > 0) this.deps.frontier?.nudge();
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
    const outcome: JobOutcome = {
      outcome: written ? 'stored' : 'duplicate',
      status: page.status,
      entryId,
      ...(proxy === undefined ? {} : { proxy }),
    };
    return outcome;
  }

  /**
   * Moves the job to delayed for `waitMs` without spending an attempt (it never sleeps in a
   * slot). Without the worker's lock token it cannot: it then retries after that wait.
   */
  private async hold(job: Job, token: string | undefined, waitMs: number, reason: string): Promise<Error> {
    this.deps.observer?.jobFinished?.('held_back', undefined, undefined);
    if (token === undefined)
      return new RetryLaterError(`held back (${reason}) for ${Math.round(waitMs)} ms`, waitMs, {
        failureClass: 'recoverable',
        reason,
      });
    await job.moveToDelayed(Date.now() + Math.round(waitMs), token);
    return new DelayedError();
  }

  /** A failed job: retried after a backoff, or routed to the DLQ, as `decide` says. */
  private async fail(job: Job, data: FetchJob | undefined, failure: Failure, attempt: number): Promise<Error> {
    const { classification, message } = failure;
    const { backoffBaseMs, backoffMaxMs } = this.deps.config.jobs;
    const decision = decide(classification, {
      attempt,
      maxAttempts: job.opts.attempts ?? 1,
      backoff: { baseMs: backoffBaseMs, maxMs: backoffMaxMs },
    });
    if (decision.kind === 'dead_letter') return this.deadLetter(job, data, failure, decision.classification, attempt);
    const { backoffMs } = decision;
    const subject = auditSubject(job, data, this.deps.hasher);
    await job.log(JSON.stringify(attemptRecord(attempt, classification, message, backoffMs)));
    this.deps.logger.warn(
      {
        job_id: job.id,
        tenant: data?.tenant,
        session_id: subject.session,
        retry_attempt: attempt,
        backoff_duration_ms: backoffMs,
        error_class: classification.failureClass,
        reason: classification.reason,
      },
      'fetch failed; retrying',
    );
    await this.deps.audit.append({
      kind: 'retry',
      ...subject,
      reason: classification.reason,
      detail: {
        attempt,
        backoffMs,
        ...(classification.status === undefined ? {} : { status: classification.status }),
      },
    });
    this.deps.observer?.retryScheduled?.(backoffMs);
    this.deps.observer?.jobFinished?.('retrying', classification.failureClass, classification.reason);
    return new RetryLaterError(message, backoffMs, classification);
  }

  /**
   * Routes the job to the DLQ before BullMQ fails it, so a crash in between cannot lose the
   * entry. The entry keeps the final classification; its history ends with this attempt's own.
   */
  private async deadLetter(
    job: Job,
    data: FetchJob | undefined,
    failure: Failure,
    final: Classification,
    attempt: number,
  ): Promise<Error> {
    const history = await this.history(job);
    history.push(attemptRecord(attempt, failure.classification, failure.message));
    const raw = job.data as Partial<FetchJob> | undefined;
    const letter: DeadLetter = {
      id: String(job.id),
      url: data?.url ?? (typeof raw?.url === 'string' ? raw.url : null),
      class: final.failureClass,
      reason: final.reason,
      message: failure.message,
      attempts: attempt,
      failedAt: new Date().toISOString(),
      tenant: data?.tenant ?? null,
      sessionId: data?.sessionId ?? null,
      job: job.data,
      history,
      lastResponse: failure.response ?? null,
    };
    await inSpan('dlq.route', { attributes: { 'crawlfleet.reason': letter.reason } }, () =>
      this.deps.dlq.route(letter),
    );
    if (data?.crawl !== undefined) await this.deps.crawls?.countDeadLettered(data.crawl.name);
    this.deps.observer?.jobFinished?.('dead_lettered', letter.class, letter.reason);
    if (attempt > 1) this.deps.observer?.retryEnded?.(false);
    const subject = auditSubject(job, data, this.deps.hasher);
    await this.deps.audit.append({
      kind: 'dlq',
      ...subject,
      url: letter.url ?? undefined,
      reason: `${letter.class}/${letter.reason}`,
      detail: { attempts: attempt },
    });
    this.deps.logger.info(
      {
        job_id: job.id,
        tenant: letter.tenant,
        session_id: subject.session,
        error_class: letter.class,
        reason: letter.reason,
        attempts: attempt,
      },
      'job moved to the DLQ',
    );
    return new DeadLetteredError(letter);
  }

  /** The attempts recorded so far (one job log line each); only read on the way to the DLQ. */
  private async history(job: Job): Promise<AttemptRecord[]> {
    if (job.attemptsMade === 0 || job.id === undefined) return [];
    const { logs } = await this.deps.queueOf(job.id).getJobLogs(job.id, 0, 99);
    return logs.flatMap((line) => {
      try {
        return [JSON.parse(line) as AttemptRecord];
      } catch {
        return [];
      }
    });
  }
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
