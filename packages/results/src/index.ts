export {
  type CountRecentOptions,
  type RecentCount,
  type ResultEntry,
  type ResultSink,
  ResultsStore,
  type WriteOutcome,
} from './results-store.js';
export { encodeBody, pickStoredHeaders, STORED_HEADERS, type StoredResult } from './stored-result.js';
