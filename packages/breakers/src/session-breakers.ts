import CircuitBreaker from 'opossum';

export interface SessionBreakerOptions {
  /** Failures, with no success between them in the rolling window, that open a breaker. */
  failureThreshold: number;
  /** How long an open breaker holds a session's jobs back before one probe may try. */
  resetTimeoutMs: number;
  /** Breakers kept per worker; the least recently used go first. */
  maxSessions: number;
}

/**
 * This worker's view of each session's health: one opossum breaker per tenant+session that is
 * failing, in a bounded LRU. A breaker trips after `failureThreshold` consecutive failures: a
 * success ends the run and drops the session's breaker, so a healthy session (nearly every
 * job) costs no breaker call at all. Only trips are reported (`onOpen`); the fleet shares them
 * through Redis, so every worker holds the session back, not only the one that saw it fail.
 */
export class SessionBreakers {
  private readonly breakers = new Map<string, CircuitBreaker<[boolean], void>>();

  constructor(
    private readonly options: SessionBreakerOptions,
    private readonly onOpen: (sessionKey: string) => void,
  ) {}

  private breaker(sessionKey: string): CircuitBreaker<[boolean], void> {
    let breaker = this.breakers.get(sessionKey);
    if (breaker !== undefined) {
      // Re-insert: a Map iterates in insertion order, so the first entry is the least recent.
      this.breakers.delete(sessionKey);
      this.breakers.set(sessionKey, breaker);
      return breaker;
    }
    breaker = new CircuitBreaker(
      // Only failures are fired: the window holds nothing but the current run of them.
      async (ok: boolean) => {
        if (!ok) throw new Error('session request failed');
      },
      {
        timeout: false,
        volumeThreshold: this.options.failureThreshold,
        // opossum opens when the error rate is strictly above this: just under 100 means "every
        // request of the window failed", which the window of failures alone makes true once
        // volumeThreshold of them are in.
        errorThresholdPercentage: 99.9,
        resetTimeout: this.options.resetTimeoutMs,
        rollingCountTimeout: Math.max(this.options.resetTimeoutMs, 60_000),
        rollingCountBuckets: 10,
      },
    );
    breaker.on('open', () => this.onOpen(sessionKey));
    this.breakers.set(sessionKey, breaker);
    if (this.breakers.size > this.options.maxSessions) {
      const [oldest] = this.breakers.keys();
      if (oldest !== undefined) this.evict(oldest);
    }
    return breaker;
  }

  /** Records one job's outcome for a session. */
  record(sessionKey: string, ok: boolean): void {
    if (ok) {
      if (this.breakers.has(sessionKey)) this.evict(sessionKey);
      return;
    }
    this.breaker(sessionKey)
      .fire(false)
      .catch(() => {});
  }

  /** A probe succeeded somewhere in the fleet: this worker starts the session afresh too. */
  reset(sessionKey: string): void {
    this.evict(sessionKey);
  }

  get size(): number {
    return this.breakers.size;
  }

  private evict(sessionKey: string): void {
    this.breakers.get(sessionKey)?.shutdown();
    this.breakers.delete(sessionKey);
  }

  /** Stops every breaker's timers. */
  shutdown(): void {
    for (const key of [...this.breakers.keys()]) this.evict(key);
  }
}
