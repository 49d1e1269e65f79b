import { type Classification, retryDelay } from '@crawlfleet/failures';

/** What becomes of a failed job. */
export type Decision =
  | { kind: 'retry'; backoffMs: number }
  /** `classification` is the entry's: a recoverable failure that ran out of retries says so. */
  | { kind: 'dead_letter'; classification: Classification };

export interface DecideOptions {
  /** This attempt, from 1. */
  attempt: number;
  /** Attempts the job may make in all (its `attempts` option). */
  maxAttempts: number;
  backoff: { baseMs: number; maxMs: number };
  /** The jitter's source; `Math.random` unless a test gives its own. */
  random?: () => number;
}

/**
 * Retry or dead-letter, from the failure and the attempts left, and nothing else: no Redis, no
 * clock. A recoverable failure with attempts left retries after a full-jitter backoff, never
 * sooner than the server's Retry-After; anything else goes to the DLQ, a recoverable one marked
 * `retries_exhausted:` so a person knows it may succeed if replayed.
 */
export function decide(failure: Classification, options: DecideOptions): Decision {
  if (failure.failureClass === 'recoverable' && options.attempt < options.maxAttempts)
    return {
      kind: 'retry',
      backoffMs: retryDelay(options.attempt, options.backoff, failure.retryAfterMs, options.random),
    };
  return {
    kind: 'dead_letter',
    classification:
      failure.failureClass === 'recoverable' ? { ...failure, reason: `retries_exhausted:${failure.reason}` } : failure,
  };
}
