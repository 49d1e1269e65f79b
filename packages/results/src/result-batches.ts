import type { WriteOutcome } from './results-store.js';

/** A result waiting for its turn's write: its ledger key and its JSON. */
export interface PendingResult {
  ledgerKey: string;
  json: string;
}

/** Results per script call at most, and bytes of JSON: a call holds Redis while it runs. */
const MAX_RESULTS = 64;
const MAX_BYTES = 4 * 1024 * 1024;

interface Waiting extends PendingResult {
  resolve: (outcome: WriteOutcome) => void;
  reject: (error: unknown) => void;
}

/**
 * The results written in one turn of the event loop, sent together at its end: at concurrency
 * 50 a worker finishes several jobs per turn, and one script call (one command, one reply) writes
 * all their results instead of one each. Each result is still written or refused on its own.
 */
export class ResultBatches {
  private pending: Waiting[] = [];
  private scheduled = false;

  constructor(private readonly send: (batch: readonly PendingResult[]) => Promise<WriteOutcome[]>) {}

  add(ledgerKey: string, json: string): Promise<WriteOutcome> {
    return new Promise<WriteOutcome>((resolve, reject) => {
      this.pending.push({ ledgerKey, json, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const all = this.pending;
    this.pending = [];
    let start = 0;
    while (start < all.length) {
      let end = start;
      let bytes = 0;
      // At least one result per call, however large.
      while (
        end < all.length &&
        end - start < MAX_RESULTS &&
        (end === start || bytes + (all[end] as Waiting).json.length <= MAX_BYTES)
      ) {
        bytes += (all[end] as Waiting).json.length;
        end++;
      }
      const batch = all.slice(start, end);
      this.send(batch).then(
        (outcomes) => {
          for (const [i, waiting] of batch.entries()) waiting.resolve(outcomes[i] as WriteOutcome);
        },
        (error: unknown) => {
          for (const waiting of batch) waiting.reject(error);
        },
      );
      start = end;
    }
  }
}
