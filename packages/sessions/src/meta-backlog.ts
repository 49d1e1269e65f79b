import type { SessionKeys } from '@crawlfleet/core';

/** What a session's meta slate holds: when it started and was last used, and its counters. */
export interface SessionMeta {
  createdAt: string;
  lastUsedAt: string;
  jobs: number;
  errors: number;
}

/** Counts not yet written to a session's meta slate. */
export interface MetaDelta {
  jobs: number;
  errors: number;
  /** The newest use these counts saw, in ms since the epoch. */
  lastUsedMs: number;
}

/** The stored meta with a delta added: counters merge, so no job's count is lost to a conflict. */
export function mergeMeta(stored: SessionMeta | undefined, delta: MetaDelta): SessionMeta {
  const lastUsedAt = new Date(delta.lastUsedMs).toISOString();
  return {
    createdAt: stored?.createdAt ?? lastUsedAt,
    lastUsedAt: stored !== undefined && stored.lastUsedAt > lastUsedAt ? stored.lastUsedAt : lastUsedAt,
    jobs: (stored?.jobs ?? 0) + delta.jobs,
    errors: (stored?.errors ?? 0) + delta.errors,
  };
}

/** Two deltas of one session as one. */
export function sumDeltas(a: MetaDelta, b: MetaDelta): MetaDelta {
  return { jobs: a.jobs + b.jobs, errors: a.errors + b.errors, lastUsedMs: Math.max(a.lastUsedMs, b.lastUsedMs) };
}

/**
 * Meta counts of one worker's jobs that changed nothing else in their session, per session,
 * waiting to be written. Most jobs of a warm session change no cookie, login or profile: writing
 * their counts behind spares each of them a sealed commit, and spares a busy session the commit
 * conflicts of many jobs bumping one counter.
 */
export class MetaBacklog {
  private readonly pending = new Map<string, { keys: SessionKeys; delta: MetaDelta }>();
  /** Set once the worker drained: no flush comes any more, so jobs still running write through. */
  closed = false;

  get size(): number {
    return this.pending.size;
  }

  add(keys: SessionKeys, delta: MetaDelta): void {
    const entry = this.pending.get(keys.base);
    if (entry === undefined) this.pending.set(keys.base, { keys, delta });
    else entry.delta = sumDeltas(entry.delta, delta);
  }

  /** Removes and returns a session's waiting counts (to be written by a commit). */
  take(keys: SessionKeys): MetaDelta | undefined {
    const entry = this.pending.get(keys.base);
    if (entry === undefined) return undefined;
    this.pending.delete(keys.base);
    return entry.delta;
  }

  /** Forgets a session's waiting counts (its state was flushed). */
  drop(keys: SessionKeys): void {
    this.pending.delete(keys.base);
  }

  /** Removes and returns everything waiting. */
  takeAll(): Array<{ keys: SessionKeys; delta: MetaDelta }> {
    const all = [...this.pending.values()];
    this.pending.clear();
    return all;
  }
}
