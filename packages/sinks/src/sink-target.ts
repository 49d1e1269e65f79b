import type { StoredResult } from '@crawlfleet/results';

/** One result as a sink writes it. */
export interface SinkEntry {
  /** The outbox entry: the order results were written in. */
  entryId: string;
  /** The result, with its body inline (a body-store reference already resolved). */
  result: StoredResult;
  /**
   * The body's bytes (capped at `fetch.resultBodyBytes`): from the body store as received, else
   * from `result.body` (text is UTF-8 here, whatever charset the page declared).
   */
  body: Buffer;
}

/**
 * Where a sink writes results. `write` resolves only once the batch is durable (fsynced, committed,
 * uploaded): the outbox entries are acknowledged after it, never before. A batch can come again
 * after a crash between `write` and the acknowledgement; a target that can (PostgreSQL) makes
 * that a no-op, the others carry each result's idempotency key so a reader can tell.
 */
export interface SinkTarget {
  /** The target as given (`jsonl:/data/out`), with no secrets, for messages. */
  readonly description: string;
  write(entries: readonly SinkEntry[]): Promise<void>;
  /** Finishes open files or uploads and releases connections. */
  close(): Promise<void>;
}
