import type { DeadLetter } from '@crawlfleet/dlq';
import type { Classification } from '@crawlfleet/failures';
import { UnrecoverableError } from 'bullmq';

/** What a finished job returns (BullMQ keeps it as the job's return value). */
export interface JobOutcome {
  outcome: 'stored' | 'duplicate' | 'cancelled';
  status?: number;
  entryId?: string;
  /** The proxy the page came through (`scheme://host:port`): what the board shows of the job. */
  proxy?: string;
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
