export { compareIds } from './merge-entries.js';
export {
  checkSinkName,
  isFull,
  Outbox,
  type OutboxFill,
  type OutboxLimits,
  type SinkState,
  totalFill,
} from './outbox.js';
export {
  type CountRecentOptions,
  type FrontierWrite,
  type OutboxItem,
  outboxEntry,
  type RecentCount,
  type RecordEntry,
  type ResultEntry,
  type ResultSink,
  ResultsStore,
  type ResultsStoreOptions,
  type WriteOutcome,
} from './results-store.js';
export { MAX_RECORD_BYTES, MAX_RECORDS_PER_PAGE, type StoredRecord } from './stored-record.js';
export { encodeBody, pickStoredHeaders, STORED_HEADERS, type StoredResult } from './stored-result.js';
