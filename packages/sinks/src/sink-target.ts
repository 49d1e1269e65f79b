import type { StoredRecord, StoredResult } from '@crawlfleet/results';

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
  record?: undefined;
}

/** A record a crawl's handler pushed, as a sink writes it. */
export interface RecordEntry {
  entryId: string;
  record: StoredRecord;
  result?: undefined;
}

/** What sinks write: pages' results, and the records crawls' handlers pushed. */
export type SinkItem = SinkEntry | RecordEntry;

/** The JSON line of an entry: the result, or the record (`"kind":"record"`). */
export function lineOf(entry: SinkItem): string {
  return `${JSON.stringify(entry.record ?? entry.result)}\n`;
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
  write(entries: readonly SinkItem[]): Promise<void>;
  /** Finishes open files or uploads and releases connections. */
  close(): Promise<void>;
}
