import type { SessionKeys } from '@crawlfleet/core';
import type { SlateName } from './slate-rules.js';

/** One slate to write, by its rule (`SLATE_RULES`). */
export type SlateWrite =
  /** Written only if the slate is still at `expectedVersion` (0: absent); undefined deletes it. */
  | { rule?: 'cas'; name: SlateName; expectedVersion: number; value: unknown; ttlMs: number }
  /** Written only if the slate does not exist; the one that stands comes back. */
  | { rule: 'create'; name: SlateName; value: unknown; ttlMs: number }
  /** Fields set and deleted, blind: the latest write of a field wins. */
  | {
      rule: 'fields';
      name: SlateName;
      set: ReadonlyArray<readonly [string, unknown]>;
      unset: readonly string[];
      ttlMs: number;
    }
  /** Counts added, the latest use kept; with `existing`, only to counters that exist. */
  | {
      rule: 'counters';
      name: SlateName;
      jobs: number;
      errors: number;
      lastUsedMs: number;
      ttlMs: number;
      existing?: boolean;
    };

/**
 * Several writes as one: per slate, fields in order (the later write of a field wins), counts
 * added up, the first `create`; the longest TTL. Compare-and-set writes are never merged (each
 * is one job's own check) and are kept as they are.
 */
export function mergeWrites(writes: readonly SlateWrite[]): SlateWrite[] {
  const merged = new Map<SlateName, SlateWrite>();
  const kept: SlateWrite[] = [];
  for (const write of writes) {
    if (write.rule === undefined || write.rule === 'cas') {
      kept.push(write);
      continue;
    }
    const earlier = merged.get(write.name);
    if (earlier === undefined) {
      merged.set(write.name, write);
      continue;
    }
    const ttlMs = Math.max(earlier.ttlMs, write.ttlMs);
    if (earlier.rule === 'fields' && write.rule === 'fields') {
      const fields = new Map<string, unknown>();
      for (const [field, value] of earlier.set) fields.set(field, value);
      for (const field of earlier.unset) fields.set(field, DELETED);
      for (const [field, value] of write.set) fields.set(field, value);
      for (const field of write.unset) fields.set(field, DELETED);
      const set = [...fields].filter(([, value]) => value !== DELETED) as Array<[string, unknown]>;
      const unset = [...fields].filter(([, value]) => value === DELETED).map(([field]) => field);
      merged.set(write.name, { rule: 'fields', name: write.name, set, unset, ttlMs });
    } else if (earlier.rule === 'counters' && write.rule === 'counters') {
      merged.set(write.name, {
        ...earlier,
        jobs: earlier.jobs + write.jobs,
        errors: earlier.errors + write.errors,
        lastUsedMs: Math.max(earlier.lastUsedMs, write.lastUsedMs),
        ttlMs,
        // A job's own count creates the session; only counts written behind wait for it.
        existing: earlier.existing === true && write.existing === true,
      });
    } else merged.set(write.name, { ...earlier, ttlMs });
  }
  return [...kept, ...merged.values()];
}

const DELETED: unique symbol = Symbol('deleted');

interface Batch<T> {
  session: SessionKeys;
  writes: SlateWrite[];
  waiting: Array<{ resolve: (result: T) => void; reject: (error: unknown) => void }>;
}

/**
 * Blind writes of one session made in the same turn of the event loop, sent as one command at
 * the end of the turn: a hot session's jobs that finish together write it once, and every one
 * of them gets that one write's answer.
 */
export class TurnBatches<T> {
  private readonly pending = new Map<string, Batch<T>>();
  private scheduled = false;

  constructor(private readonly send: (session: SessionKeys, writes: readonly SlateWrite[]) => Promise<T>) {}

  add(session: SessionKeys, writes: readonly SlateWrite[]): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let batch = this.pending.get(session.base);
      if (batch === undefined) {
        batch = { session, writes: [], waiting: [] };
        this.pending.set(session.base, batch);
      }
      batch.writes.push(...writes);
      batch.waiting.push({ resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batches = [...this.pending.values()];
    this.pending.clear();
    for (const batch of batches) {
      this.send(batch.session, batch.writes).then(
        (result) => {
          for (const waiter of batch.waiting) waiter.resolve(result);
        },
        (error: unknown) => {
          for (const waiter of batch.waiting) waiter.reject(error);
        },
      );
    }
  }
}
