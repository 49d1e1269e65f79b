import type { FetchJob, TenantConfig } from '@crawlfleet/core';
import type { Classification, ResponseSummary } from '@crawlfleet/failures';
import type { FetchedPage } from '@crawlfleet/fetcher';
import type { FrontierWrite } from '@crawlfleet/results';

/** Why a job waits without spending an attempt. */
export type HoldReason =
  | 'host_paced'
  | 'breaker_open'
  | 'breaker_half_open'
  | 'auth_cooldown'
  | 'proxy_rotation'
  | 'crawl_paused';

/** A job that may not be fetched, or failed: its classification and what a person reads. */
export interface Failure {
  classification: Classification;
  message: string;
  /** The answer that failed it, for the DLQ entry (redacted as results are). */
  response?: ResponseSummary | undefined;
}

/** What a gate answers: the job goes on, waits (no attempt spent), or is refused. */
export type GateVerdict =
  | { kind: 'go' }
  | { kind: 'hold'; waitMs: number; reason: HoldReason }
  | { kind: 'refuse'; failure: Failure };

export const GO: GateVerdict = { kind: 'go' };

/**
 * What one job came to, as the stages found it. `settle` alone acts on it: writes the result or
 * the DLQ entry, the audit event, the logs and the metrics, and gives BullMQ its signal.
 */
export type JobVerdict =
  /** The page is fetched and judged fine: its result is written. */
  | {
      kind: 'fetched';
      data: FetchJob;
      tenant: TenantConfig;
      page: FetchedPage;
      proxy?: string | undefined;
      /** A crawl's page: the links it follows, admitted with its result. */
      frontier?: FrontierWrite | undefined;
    }
  /** The job's key finished before (a retry, a replay, a re-run after a crash): nothing to do. */
  | { kind: 'duplicate' }
  /** The job's crawl was cancelled: it ends with nothing fetched, stored or dead-lettered. */
  | { kind: 'cancelled'; crawl: string }
  | { kind: 'hold'; waitMs: number; reason: HoldReason }
  /** The job failed or was refused; `decide` says whether it retries or goes to the DLQ. */
  | { kind: 'failed'; data: FetchJob | undefined; failure: Failure };
