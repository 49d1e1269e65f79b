import type { CrawlObserver, SessionKeys, SessionsConfig } from '@crawlfleet/core';
import type { Logger } from '@crawlfleet/log';
import type { SlateName, SlateRead, SlateStore } from '@crawlfleet/slates';
import { normalizeAuth } from './auth-state.js';
import { JobSession, mayHaveApplied, type SessionContext } from './job-session.js';
import { MetaBacklog, type MetaDelta } from './meta-backlog.js';
import { newSessionCounters, type SessionCounters } from './session-counters.js';
import type { SessionHasher } from './session-hasher.js';
import { SessionCookieJar } from './session-jar.js';

const HYDRATED: readonly SlateName[] = ['cookies', 'auth', 'profile', 'meta'];
/** For a tenant without a login hook: nothing ever writes its sessions' auth slate. */
const HYDRATED_WITHOUT_AUTH: readonly SlateName[] = ['cookies', 'profile', 'meta'];
/** Render jobs also read the browser storage the session keeps. */
const HYDRATED_FOR_BROWSER: readonly SlateName[] = ['cookies', 'auth', 'profile', 'storage', 'meta'];
const HYDRATED_FOR_BROWSER_WITHOUT_AUTH: readonly SlateName[] = ['cookies', 'profile', 'storage', 'meta'];

/** Sessions whose meta counts one flush writes at a time. */
const FLUSH_BATCH = 100;

/** Opens job sessions on one slate store (or none: then every session is ephemeral). */
export class SessionManager {
  private readonly context: SessionContext;
  private readonly flushTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  readonly counters: SessionCounters;

  constructor(options: {
    store: SlateStore | undefined;
    config: SessionsConfig;
    logger: Logger;
    hasher: SessionHasher;
    observer?: CrawlObserver | undefined;
  }) {
    this.counters = newSessionCounters();
    this.context = { ...options, counters: this.counters, backlog: new MetaBacklog() };
    const { metaFlushMs } = options.config;
    if (options.store !== undefined && metaFlushMs > 0) {
      this.flushTimer = setInterval(() => void this.flushMeta(), metaFlushMs);
      this.flushTimer.unref();
    }
  }

  /** Sessions whose meta counts wait to be written. */
  get metaBacklog(): number {
    return this.context.backlog.size;
  }

  /**
   * Writes every waiting meta count (added to each session's counters, blind: no read, no
   * conflict). A session whose meta is gone (purged, quarantined, expired) is not brought back
   * for a count. Counts that could not be written wait for the next flush.
   */
  flushMeta(): Promise<void> {
    this.flushing ??= this.writeBacklog().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  /**
   * Stops the flush timer and writes what waits (a few tries for counts that met a failure):
   * call when the worker drains. What is still waiting then is dropped, and logged.
   */
  async close(): Promise<void> {
    clearInterval(this.flushTimer);
    this.context.backlog.closed = true;
    await this.flushing;
    for (let tries = 0; tries < 3 && this.context.backlog.size > 0; tries++) await this.flushMeta();
    const left = this.context.backlog.takeAll();
    if (left.length === 0) return;
    const jobs = left.reduce((sum, { delta }) => sum + delta.jobs, 0);
    this.counters.metaDropped += jobs;
    this.context.logger.warn({ sessions: left.length, jobs }, 'session meta counts not written at drain: dropped');
  }

  private async writeBacklog(): Promise<void> {
    const { store, backlog, logger } = this.context;
    if (store === undefined) return;
    const waiting = backlog.takeAll();
    const failures: string[] = [];
    // A bounded number at a time: a worker may hold thousands of sessions' counts.
    for (let start = 0; start < waiting.length; start += FLUSH_BATCH) {
      await Promise.all(
        waiting.slice(start, start + FLUSH_BATCH).map(async ({ keys, delta }) => {
          try {
            const outcome = await this.writeMeta(store, keys, delta);
            if (outcome === 'written') this.counters.metaWrittenBehind += delta.jobs;
          } catch (error) {
            // A write Redis may have applied is not tried again: a count is not counted twice.
            if (mayHaveApplied(error)) this.counters.metaDropped += delta.jobs;
            else backlog.add(keys, delta);
            failures.push((error as Error).message);
          }
        }),
      );
    }
    if (failures.length > 0)
      logger.warn(
        { sessions: failures.length, err: failures[0] },
        'could not write session meta counts; they wait for the next flush unless Redis may have applied them',
      );
  }

  /** One session's counts onto its stored meta: `gone` when the session has no meta any more. */
  private async writeMeta(store: SlateStore, keys: SessionKeys, delta: MetaDelta): Promise<'written' | 'gone'> {
    const result = await store.commit(keys, [
      { rule: 'counters', name: 'meta', ...delta, ttlMs: this.context.config.metaTtlSeconds * 1000, existing: true },
    ]);
    return result.ok && (result.versions.get('meta') ?? 0) > 0 ? 'written' : 'gone';
  }

  /** How this installation names sessions in logs and audit events. */
  get hasher(): SessionHasher {
    return this.context.hasher;
  }

  get store(): SlateStore | undefined {
    return this.context.store;
  }

  /**
   * Hydrates cookies, auth (unless `auth: false`: the tenant has no login hook), profile, meta and,
   * with `storage` (a render job), the browser storage, in one round trip. A slate that fails to open or parse is discarded with a warning and starts
   * fresh; an unreachable store gives an ephemeral session.
   */
  async open(keys: SessionKeys, options: { auth?: boolean; storage?: boolean } = {}): Promise<JobSession> {
    const { store, logger, counters } = this.context;
    // Only warnings name the session: its keyed hash is not worth computing for every job.
    const hashed = () => this.context.hasher.hash(keys.tenant, keys.sessionId);
    let reads: Map<SlateName, SlateRead>;
    let quarantined: boolean;
    let breakerOpenUntil: number | undefined;
    try {
      if (store === undefined) throw new Error('no session store configured');
      const started = performance.now();
      const names =
        options.storage === true
          ? options.auth === false
            ? HYDRATED_FOR_BROWSER_WITHOUT_AUTH
            : HYDRATED_FOR_BROWSER
          : options.auth === false
            ? HYDRATED_WITHOUT_AUTH
            : HYDRATED;
      ({ slates: reads, quarantined, breakerOpenUntil } = await store.hydrate(keys, names));
      this.context.observer?.stateSynced?.('hydrate', performance.now() - started);
    } catch (error) {
      counters.ephemeral++;
      this.context.observer?.sessionEphemeral?.();
      logger.warn(
        { session_id: hashed(), err: (error as Error).message },
        'session store unreachable; this job runs on an ephemeral session',
      );
      return new JobSession({ keys, context: this.context, ephemeral: true });
    }
    // A slate sealed with a key this ring lacks is not this worker's to replace: the job runs on
    // an ephemeral session and writes nothing, so a worker with the right keys still opens it.
    const foreign = [...reads.values()].find((read) => read.discarded?.reason === 'unknown_key');
    if (foreign !== undefined) {
      counters.unknownKey++;
      this.context.observer?.sessionEphemeral?.();
      logger.warn(
        { session_id: hashed(), slate: foreign.name, payload_hash: foreign.discarded?.payloadHash },
        "a session slate is sealed with a key this worker's session keys lack; the job runs on an ephemeral session and writes nothing to it",
      );
      return new JobSession({ keys, context: this.context, ephemeral: true });
    }
    let dirty = false;
    for (const read of reads.values()) {
      if (read.discarded === undefined && read.discardedFields === undefined && read.legacy !== true) continue;
      dirty = true;
      if (read.legacy === true) continue;
      counters.discardedSlates++;
      this.context.observer?.sessionInvalidated?.('discarded_slate');
      logger.warn(
        {
          session_id: hashed(),
          slate: read.name,
          reason: read.discarded?.reason ?? 'field_failed_to_open',
          payload_hash: read.discarded?.payloadHash,
          fields: read.discardedFields?.length,
        },
        'discarded a session slate (or some of its fields) that failed to open; it starts fresh',
      );
    }
    if (reads.get('meta')?.version === 0) {
      counters.created++;
      this.context.observer?.sessionCreated?.();
    }
    const cookies = reads.get('cookies');
    const { jar, dropped } = await SessionCookieJar.fromSlate(cookies?.value);
    counters.cookiesDropped += dropped;
    for (const field of cookies?.discardedFields ?? []) jar.stale.add(field);
    // A stored jar over its limits (written before they existed) is bounded and written back.
    const evicted = jar.evicted;
    jar.evicted = 0;
    if (evicted > 0) {
      counters.cookiesEvicted += evicted;
      this.context.observer?.cookiesEvicted?.(evicted);
    }
    return new JobSession({
      keys,
      context: this.context,
      jar,
      auth: normalizeAuth(reads.get('auth')?.value),
      reads,
      // An older whole-jar slate, or a discarded one, is written back whole, as fields.
      rewriteCookies: cookies?.legacy === true || cookies?.discarded !== undefined,
      discarded: dirty
        ? new Set([...reads.values()].filter((read) => read.discarded !== undefined).map((read) => read.name))
        : undefined,
      quarantined,
      breakerOpenUntil,
    });
  }
}
