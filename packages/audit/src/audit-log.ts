import type { KeyLayout, RedisClient } from '@crawlfleet/core';

export const AUDIT_KINDS = [
  'retry',
  'dlq',
  'quarantine',
  'breaker_open',
  'breaker_half_open',
  'breaker_closed',
  'replay',
  'purge',
  'proxy_down',
  'proxy_rotated',
] as const;
export type AuditKind = (typeof AUDIT_KINDS)[number];

/** One audit event. Sessions appear by their hashed id only. */
export interface AuditEvent {
  kind: AuditKind;
  at: string;
  jobId?: string | undefined;
  tenant?: string | undefined;
  /** The hashed session id (see `hashSessionId`). */
  session?: string | undefined;
  url?: string | undefined;
  reason?: string | undefined;
  /** Free-form facts: attempt, backoff, counts. Never secrets. */
  detail?: Record<string, unknown> | undefined;
}

export interface AuditQuery {
  session?: string | undefined;
  kind?: AuditKind | undefined;
  /** At most this many events, newest first. */
  limit?: number | undefined;
}

/**
 * The append-only audit stream (`{prefix}:audit`), trimmed to about `maxLen` entries. Appending
 * never fails the work it records: an audit that cannot be written is reported to `onError`.
 */
export class AuditLog {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: KeyLayout,
    private readonly maxLen: number,
    private readonly onError: (error: Error) => void = () => {},
  ) {}

  append(event: Omit<AuditEvent, 'at'>): Promise<void> {
    return this.appendAll([event]);
  }

  /** Appends events in order, in one round trip. */
  async appendAll(events: ReadonlyArray<Omit<AuditEvent, 'at'>>): Promise<void> {
    if (events.length === 0) return;
    const at = new Date().toISOString();
    const pipeline = this.redis.pipeline();
    for (const event of events)
      pipeline.xadd(this.keys.audit, 'MAXLEN', '~', this.maxLen, '*', 'e', JSON.stringify({ ...event, at }));
    try {
      for (const [error] of (await pipeline.exec()) ?? []) if (error) throw error;
    } catch (error) {
      this.onError(error as Error);
    }
  }

  /** Events newest first, filtered, read in pages. */
  async query(query: AuditQuery = {}): Promise<AuditEvent[]> {
    const limit = query.limit ?? 100;
    const found: AuditEvent[] = [];
    let end = '+';
    for (;;) {
      const page = await this.redis.xrevrange(this.keys.audit, end, '-', 'COUNT', 500);
      for (const [, fields] of page) {
        const event = JSON.parse(String(fields[1])) as AuditEvent;
        if (query.session !== undefined && event.session !== query.session) continue;
        if (query.kind !== undefined && event.kind !== query.kind) continue;
        found.push(event);
        if (found.length >= limit) return found;
      }
      if (page.length < 500) return found;
      end = `(${page[page.length - 1]?.[0]}`;
    }
  }
}
