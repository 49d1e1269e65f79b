import { createHash } from 'node:crypto';

/** A slate this worker opened: the version and envelope it was read at, and its value. */
export interface OpenedSlate {
  version: number;
  /** SHA-1 (hex) of the envelope: the hydrate script compares it with what is stored. */
  digest: string;
  value: unknown;
}

/**
 * Slates this worker already decrypted and parsed, by Redis key, oldest first out (a touch does
 * not reorder: the capacity is far above a worker's working set, and a reorder costs every hit).
 * A hot session's profile and meta rarely change: its next job is told "unchanged" by the
 * hydrate script and reuses the value instead of receiving and opening the same envelope again.
 * Values are frozen: every job of the session shares them.
 */
export class OpenedSlates {
  private readonly entries = new Map<string, OpenedSlate>();

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: string): OpenedSlate | undefined {
    return this.entries.get(key);
  }

  set(key: string, entry: OpenedSlate): void {
    if (this.capacity <= 0) return;
    deepFreeze(entry.value);
    this.entries.delete(key);
    this.entries.set(key, entry);
    if (this.entries.size > this.capacity) {
      const [oldest] = this.entries.keys();
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }
}

/** What the hydrate script compares: SHA-1 as Lua's `redis.sha1hex` computes it. */
export function envelopeDigest(envelope: string): string {
  return createHash('sha1').update(envelope).digest('hex');
}

function deepFreeze(value: unknown): void {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return;
  Object.freeze(value);
  for (const inner of Object.values(value)) deepFreeze(inner);
}
