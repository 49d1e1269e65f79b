/** Counts a worker keeps about sessions (exported as metrics by the observability work). */
export interface SessionCounters {
  created: number;
  ephemeral: number;
  quarantined: number;
  discardedSlates: number;
  cookiesDropped: number;
  cookiesRejected: number;
  /** Cookies dropped to keep session jars within their browser-like limits (oldest first). */
  cookiesEvicted: number;
  commitConflicts: number;
  commitFailures: number;
  /** Meta counts written behind, by a commit of a later job or by a flush. */
  metaWrittenBehind: number;
  /**
   * Meta counts given up: a write whose outcome is unknown (Redis did not answer in time; it may
   * have applied it), or counts still waiting when the worker stopped. Counters are advisory: a
   * count is dropped rather than risk counting it twice.
   */
  metaDropped: number;
  /**
   * Jobs that ran ephemeral because a slate of their session is sealed with a key this worker's
   * ring lacks: nothing of theirs is written, so the fleet's keys still open the session.
   */
  unknownKey: number;
}

export function newSessionCounters(): SessionCounters {
  return {
    created: 0,
    ephemeral: 0,
    quarantined: 0,
    discardedSlates: 0,
    cookiesDropped: 0,
    cookiesRejected: 0,
    cookiesEvicted: 0,
    commitConflicts: 0,
    commitFailures: 0,
    metaWrittenBehind: 0,
    metaDropped: 0,
    unknownKey: 0,
  };
}
