/**
 * A record a crawl's handler pushed for a page (`push(record)`): written to the outbox in the
 * same step as the page's result (field `d` of its entry, where a result's is `r`), so a page
 * retried, replayed or re-run after a crash pushes each record once. Sinks write it as its own
 * kind: a JSON line with `"kind":"record"`, a row of `crawlfleet_records`.
 */
export interface StoredRecord {
  kind: 'record';
  /** `<idempotencyKey>:<n>` (the page's key, the record's place among the page's): the same on every run. */
  id: string;
  crawl: string;
  /** The page it came from, and the page's idempotency key. */
  url: string;
  idempotencyKey: string;
  tenant: string;
  /** What the handler pushed (JSON). */
  data: unknown;
  pushedAt: string;
}

/** The most records one page may push, and the largest one (as JSON). */
export const MAX_RECORDS_PER_PAGE = 1_000;
export const MAX_RECORD_BYTES = 1024 * 1024;
