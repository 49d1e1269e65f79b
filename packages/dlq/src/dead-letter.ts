import type { FailureClass, ResponseSummary } from '@crawlfleet/failures';

/** One attempt of a job, as the DLQ entry's history keeps it. */
export interface AttemptRecord {
  attempt: number;
  at: string;
  failureClass: FailureClass;
  reason: string;
  error: string;
  status?: number | undefined;
  /** The delay chosen before the next attempt, when one followed. */
  backoffMs?: number | undefined;
}

/** A dead letter: everything a person needs to decide whether and how to replay a job. */
export interface DeadLetter {
  /** The original job's id (its idempotency key), also the DLQ job's id. */
  id: string;
  url: string | null;
  class: FailureClass;
  reason: string;
  message: string;
  attempts: number;
  failedAt: string;
  tenant: string | null;
  sessionId: string | null;
  /** The original job data, exactly as it was in the queue (it may not fit the schema). */
  job: unknown;
  history: AttemptRecord[];
  lastResponse: ResponseSummary | null;
}

/** The one-line view of `dlq list`: with the named crawl the job was a page of, when it was. */
export type DeadLetterSummary = Pick<
  DeadLetter,
  'id' | 'url' | 'class' | 'reason' | 'attempts' | 'failedAt' | 'tenant'
> & { crawl?: string };

/** The named crawl a dead letter's job belonged to. */
export function crawlOfLetter(letter: DeadLetter): string | undefined {
  const crawl = (letter.job as { crawl?: { name?: unknown } } | null | undefined)?.crawl?.name;
  return typeof crawl === 'string' ? crawl : undefined;
}

export function summarize(letter: DeadLetter): DeadLetterSummary {
  const { id, url, reason, attempts, failedAt, tenant } = letter;
  const crawl = crawlOfLetter(letter);
  return {
    id,
    url,
    class: letter.class,
    reason,
    attempts,
    failedAt,
    tenant,
    ...(crawl === undefined ? {} : { crawl }),
  };
}
