import type { AuditLog } from '@crawlfleet/audit';
import { BreakerFlags, SessionBreakers } from '@crawlfleet/breakers';
import type { CrawlfleetConfig, CrawlObserver, FetchJob, KeyLayout } from '@crawlfleet/core';
import type { Classification } from '@crawlfleet/failures';
import type { Logger } from '@crawlfleet/log';
import type { JobSession, SessionManager } from '@crawlfleet/sessions';
import type { Job } from 'bullmq';
import { auditSubject } from './audit-subject.js';
import { type GateVerdict, GO } from './verdicts.js';

export interface BreakerGateDeps {
  config: CrawlfleetConfig;
  keys: KeyLayout;
  sessions: SessionManager;
  audit: AuditLog;
  logger: Logger;
  observer?: CrawlObserver | undefined;
}

/**
 * Session breakers for the fleet: this worker's opossum breakers detect a failing session; the
 * open state lives in Redis, so every worker holds that session's jobs back (delayed, no attempt
 * spent) while other sessions flow; after the reset timeout one probe across the fleet decides.
 */
export class BreakerGate {
  /** This worker's breakers, one per session. */
  readonly breakers: SessionBreakers;
  /** The fleet's view of them, beside the sessions' slates (none without a session store). */
  private readonly flags: BreakerFlags | undefined;

  constructor(private readonly deps: BreakerGateDeps) {
    const store = deps.sessions.store;
    this.flags =
      store === undefined ? undefined : new BreakerFlags(store.connection, (session) => store.forget(session));
    const { failureThreshold, resetTimeoutMs, maxSessionsPerWorker } = deps.config.breakers;
    this.breakers = new SessionBreakers(
      { failureThreshold, resetTimeoutMs, maxSessions: maxSessionsPerWorker },
      (sessionKey) => {
        const slash = sessionKey.indexOf('/');
        void this.open(sessionKey.slice(0, slash), sessionKey.slice(slash + 1), 'failure_threshold');
      },
    );
  }

  shutdown(): void {
    this.breakers.shutdown();
  }

  /**
   * Opens a session's breaker for the whole fleet, and says so. A trip seen by this worker does
   * nothing when the fleet's breaker is already open or probing; a failed probe (`reopen`) starts
   * a new open period.
   */
  private async open(tenant: string, sessionId: string, reason: string, reopen = false): Promise<void> {
    const until = Date.now() + this.deps.config.breakers.resetTimeoutMs;
    let opened = false;
    try {
      opened = (await this.flags?.open(this.deps.keys.session(tenant, sessionId), until, reopen)) ?? false;
    } catch (error) {
      this.deps.logger.warn({ err: (error as Error).message }, 'could not publish an open breaker');
    }
    if (!opened) return;
    this.deps.observer?.sessionInvalidated?.('breaker_open');
    const session = this.deps.sessions.hasher.hash(tenant, sessionId);
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
  async recordHealth(
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
      await this.flags?.close(session.keys);
      this.breakers.reset(sessionKey);
      this.deps.logger.info(
        { job_id: job.id, tenant: data.tenant, session_id: session.hashedId },
        'session breaker closed',
      );
      await this.deps.audit.append({
        kind: 'breaker_closed',
        ...auditSubject(job, data, this.deps.sessions.hasher),
        reason: 'probe_succeeded',
      });
    } else {
      await this.open(data.tenant, session.keys.sessionId, `probe_failed:${failure?.reason}`, true);
    }
  }

  /**
   * A session whose breaker is open waits, on every worker, without spending attempts (a hold).
   * `openedBefore` says the breaker was open and its open period is over: the job may probe.
   */
  whileOpen(session: JobSession | undefined): { verdict: GateVerdict; openedBefore: boolean } {
    const openUntil = session?.breakerOpenUntil;
    if (openUntil === undefined) return { verdict: GO, openedBefore: false };
    const now = Date.now();
    if (now < openUntil)
      return {
        verdict: { kind: 'hold', waitMs: openUntil - now + Math.random() * 250, reason: 'breaker_open' },
        openedBefore: true,
      };
    return { verdict: GO, openedBefore: true };
  }

  /**
   * One job across the fleet probes a half-open breaker (`probing`); the others wait a little
   * more (a hold). A job that read the breaker before a probe closed it just runs.
   */
  async takeProbe(
    job: Job,
    data: FetchJob,
    session: JobSession | undefined,
  ): Promise<{ verdict: GateVerdict; probing: boolean }> {
    if (session === undefined || this.flags === undefined) return { verdict: GO, probing: false };
    const taken = await this.flags.tryProbe(session.keys, this.deps.config.fetch.timeoutMs + 5_000);
    if (taken === 'closed') return { verdict: GO, probing: false };
    if (taken === 'probe') {
      await this.deps.audit.append({
        kind: 'breaker_half_open',
        ...auditSubject(job, data, this.deps.sessions.hasher),
        reason: 'probe',
      });
      return { verdict: GO, probing: true };
    }
    return {
      verdict: { kind: 'hold', waitMs: 250 + Math.random() * 250, reason: 'breaker_half_open' },
      probing: false,
    };
  }
}
