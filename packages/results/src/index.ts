export {
  checkSinkName,
  isFull,
  Outbox,
  type OutboxFill,
  type OutboxLimits,
  type SinkState,
} from './outbox.js';
export {
  type CountRecentOptions,
  type FrontierWrite,
  type RecentCount,
  type ResultEntry,
  type ResultSink,
  ResultsStore,
  type ResultsStoreOptions,
  type WriteOutcome,
} from './results-store.js';
export { encodeBody, pickStoredHeaders, STORED_HEADERS, type StoredResult } from './stored-result.js';
