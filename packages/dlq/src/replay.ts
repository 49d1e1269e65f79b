import { type FetchJob, parseFetchJob } from '@crawlfleet/core';
import type { Producer } from '@crawlfleet/producer';
import type { DeadLetter } from './dead-letter.js';
import type { DeadLetterQueue } from './dead-letter-queue.js';

export interface ReplayReport {
  /** Ids enqueued on `crawl` again, with fresh attempts, and removed from the DLQ. */
  replayed: string[];
  /** Entries left in the DLQ, and why. */
  skipped: Array<{ id: string; reason: 'invalid_payload' | 'foreign_id' | 'job_in_progress' }>;
}

/**
 * Replays dead letters: each original job goes back on `crawl` with fresh attempts, and only
 * once it is enqueued is its entry removed, so a failure in between loses nothing. A replayed
 * key that did succeed meanwhile is recognised by the ledger and not stored twice. The same code
 * serves `crawlfleet dlq replay` and the board's retry action.
 */
export async function replayDeadLetters(
  dlq: DeadLetterQueue,
  producer: Producer,
  letters: Iterable<DeadLetter> | AsyncIterable<DeadLetter>,
  options: { batchSize?: number; beforeEnqueue?: (ids: string[]) => Promise<void> } = {},
): Promise<ReplayReport> {
  const batchSize = options.batchSize ?? 100;
  const report: ReplayReport = { replayed: [], skipped: [] };
  let batch: FetchJob[] = [];
  const replayedLetters = new Map<string, DeadLetter>();
  const flush = async () => {
    if (batch.length === 0) return;
    const enqueued = await producer.requeue(batch, options.beforeEnqueue);
    const done = new Set(enqueued);
    for (const job of batch)
      if (!done.has(job.idempotencyKey)) report.skipped.push({ id: job.idempotencyKey, reason: 'job_in_progress' });
    // Only the entries that are still the ones replayed: a replayed job that already failed again
    // has routed a new entry meanwhile.
    await dlq.removeIfUnchanged(enqueued.flatMap((id) => replayedLetters.get(id) ?? []));
    report.replayed.push(...enqueued);
    batch = [];
    replayedLetters.clear();
  };
  for await (const letter of letters) {
    const parsed = parseFetchJob(letter.job);
    if (!parsed.ok) {
      report.skipped.push({ id: letter.id, reason: 'invalid_payload' });
      continue;
    }
    // A job added by hand under another id than its key: replaying it would create a second job.
    if (parsed.job.idempotencyKey !== letter.id) {
      report.skipped.push({ id: letter.id, reason: 'foreign_id' });
      continue;
    }
    batch.push(parsed.job);
    replayedLetters.set(letter.id, letter);
    if (batch.length >= batchSize) await flush();
  }
  await flush();
  return report;
}
