/**
 * The three failure classes of the design. `recoverable` is retried with backoff;
 * `non_recoverable` goes straight to the DLQ; `compliance_blocked` also quarantines the session.
 */
export const FAILURE_CLASSES = ['recoverable', 'non_recoverable', 'compliance_blocked'] as const;
export type FailureClass = (typeof FAILURE_CLASSES)[number];

/** A classified failure: its class and a stable reason code (`http_404`, `timeout`, ...). */
export interface Classification {
  failureClass: FailureClass;
  reason: string;
  /** The HTTP status, when the failure is a response. */
  status?: number | undefined;
  /** The earliest time to try again that the server asked for (Retry-After), in ms from now. */
  retryAfterMs?: number | undefined;
}

/** What a person needs to decide about a failed fetch: kept in the DLQ entry. */
export interface ResponseSummary {
  status: number;
  headers: Record<string, string>;
  /** The first 2 KiB of the body, as text. */
  bodySnippet: string;
}

/** A fetch that failed, with its classification. Thrown by the fetch path, read by the worker. */
export class CrawlFailure extends Error {
  override readonly name: string = 'CrawlFailure';
  readonly failureClass: FailureClass;
  readonly reason: string;
  readonly status: number | undefined;
  readonly retryAfterMs: number | undefined;
  readonly response: ResponseSummary | undefined;

  constructor(classification: Classification, message: string, response?: ResponseSummary) {
    super(message);
    this.failureClass = classification.failureClass;
    this.reason = classification.reason;
    this.status = classification.status;
    this.retryAfterMs = classification.retryAfterMs;
    this.response = response;
  }
}

export class RecoverableError extends CrawlFailure {
  override readonly name = 'RecoverableError';
  constructor(reason: string, message: string, extra: Omit<Classification, 'failureClass' | 'reason'> = {}) {
    super({ failureClass: 'recoverable', reason, ...extra }, message);
  }
}

export class NonRecoverableError extends CrawlFailure {
  override readonly name = 'NonRecoverableError';
  constructor(reason: string, message: string, extra: Omit<Classification, 'failureClass' | 'reason'> = {}) {
    super({ failureClass: 'non_recoverable', reason, ...extra }, message);
  }
}

export class ComplianceBlockedError extends CrawlFailure {
  override readonly name = 'ComplianceBlockedError';
  constructor(reason: string, message: string, extra: Omit<Classification, 'failureClass' | 'reason'> = {}) {
    super({ failureClass: 'compliance_blocked', reason, ...extra }, message);
  }
}
