import { InputError } from '@crawlfleet/core';

/** One target that cannot become a job, and why. */
export interface TargetProblem {
  /** Where the target was written, as a person finds it: `urls.txt line 3`, `argument 2`, `target 2`. */
  where: string;
  /** Its line in a target list (comments and blank lines counted); absent for an argument. */
  line?: number | undefined;
  /** The reason code of the refusal: `invalid_url`, `invalid_target`, `invalid_job`, ... */
  code: string;
  /** The reason, in one line, without `where`. */
  message: string;
}

/**
 * Thrown when targets are bad, after every target was checked. `problems` lists each bad target
 * in input order. One problem is the message; several are counted in it, for the caller to list.
 */
export class InvalidTargetsError extends InputError {
  override readonly name = 'InvalidTargetsError';

  constructor(
    readonly problems: readonly TargetProblem[],
    /** Say so in the message: a submit refused its input. */
    { nothingEnqueued = false } = {},
  ) {
    const [only] = problems.length === 1 ? problems : [];
    const outcome = nothingEnqueued ? '; nothing was enqueued' : '';
    super(
      only?.code ?? 'invalid_targets',
      only === undefined ? `${problems.length} bad targets${outcome}` : `${only.where}: ${only.message}${outcome}`,
    );
  }
}

export interface SubmitReport {
  enqueued: number;
  duplicates: number;
  /** The idempotency keys of the jobs enqueued, in input order. */
  keys: string[];
  /**
   * Masters (with replicas) where no replica confirmed the jobs within the wait: a failover of one
   * of them right now could lose jobs it took. 0 or absent when every one confirmed.
   */
  unreplicated?: number;
}

/**
 * Thrown when Redis fails part-way through a submit: says how much had been enqueued by then,
 * and that the same submit can run again (the jobs already enqueued count as duplicates).
 */
export class PartialSubmitError extends Error {
  override readonly name = 'PartialSubmitError';
  readonly exitCode = 1;
  readonly code = 'submit_interrupted';

  constructor(
    readonly report: SubmitReport,
    readonly total: number,
    cause: Error,
    /** The first error the connection reported meanwhile (`read ECONNRESET`): why it broke. */
    connectionError?: Error,
  ) {
    const said = connectionError?.message;
    const why = said === undefined || said === cause.message ? '' : ` (${said})`;
    super(
      `submit interrupted after enqueuing ${report.enqueued} of ${total} jobs (${report.duplicates} duplicates): Redis: ${cause.message.replace(/\.$/, '')}${why}; re-running the same submit is safe, the jobs already enqueued count as duplicates`,
      { cause },
    );
  }
}
