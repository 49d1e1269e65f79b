import type { CrawlObserver, SessionKeys, SessionsConfig } from '@crawlfleet/core';
import { RecoverableError } from '@crawlfleet/failures';
import type { Logger } from '@crawlfleet/log';
import type { SlateName, SlateRead, SlateStore, SlateWrite } from '@crawlfleet/slates';
import type { Cookie } from 'tough-cookie';
import { type AuthState, normalizeAuth } from './auth-state.js';
import { type MetaBacklog, type MetaDelta, type SessionMeta, sumDeltas } from './meta-backlog.js';
import type { SessionCounters } from './session-counters.js';
import type { SessionHasher } from './session-hasher.js';
import { SessionCookieJar } from './session-jar.js';

/** The session's stable identity: written once by the first job, read by every job. */
export interface SessionProfile {
  userAgent: string;
  createdAt: string;
  /** The proxy (`scheme://host:port`) the session's requests go through, when its tenant has proxies. */
  proxy?: string;
  /** A browser-like header set, in its order, sent with every request (`identity.profile: browser`). */
  headers?: Record<string, string>;
  /** The TLS handshake's family (`chrome`, `firefox`, `safari`, `node`), the user agent's; older profiles derive it. */
  tls?: string;
}

export interface SessionContext {
  store: SlateStore | undefined;
  hasher: SessionHasher;
  observer?: CrawlObserver | undefined;
  config: SessionsConfig;
  logger: Logger;
  counters: SessionCounters;
  /** Meta counts of this worker's jobs not written yet (`sessions.metaFlushMs`). */
  backlog: MetaBacklog;
}

/** One origin's localStorage, as a browser's storage state lists it. */
export type OriginStorage = ReadonlyArray<{ name: string; value: string }>;

/** What a job's session starts from (`SessionManager.open`). */
export interface JobSessionOptions {
  keys: SessionKeys;
  context: SessionContext;
  /** Nothing is read or written: the store is unreachable, or the session is not this worker's to write. */
  ephemeral?: boolean | undefined;
  jar?: SessionCookieJar | undefined;
  auth?: AuthState | undefined;
  /** The slates as hydrated. */
  reads?: Map<SlateName, SlateRead> | undefined;
  /** Hydration cleaned the stored cookies (or read an older form): the whole jar is written back. */
  rewriteCookies?: boolean | undefined;
  /** Slates that failed to open: they are rewritten (or deleted) by this job's commit. */
  discarded?: ReadonlySet<SlateName> | undefined;
  /** True while the session is quarantined after a compliance block: do not use it. */
  quarantined?: boolean | undefined;
  /** When the session's breaker is open for the fleet: until this time (ms since the epoch). */
  breakerOpenUntil?: number | undefined;
}

const NONE: ReadonlySet<SlateName> = new Set();

/**
 * A job's view of its session: hydrated at the start, used without any lock, and what the job
 * changed written at the end, each slate by its rule (`SLATE_RULES`): the cookies it changed as
 * blind field writes, a login by compare-and-set that keeps the later one, a profile created
 * once, meta counts added. Only a workflow's compare-and-set can fail the job (it read stale
 * state).
 */
export class JobSession {
  readonly keys: SessionKeys;
  readonly ephemeral: boolean;
  readonly quarantined: boolean;
  readonly breakerOpenUntil: number | undefined;
  jar: SessionCookieJar;
  auth: AuthState | undefined;
  /** When this job read its session: a login after this moment is newer than what it saw. */
  readonly openedAt = Date.now();
  private readonly context: SessionContext;
  private readonly reads: Map<SlateName, SlateRead>;
  private readonly discarded: ReadonlySet<SlateName>;
  private rewriteCookies: boolean;
  private authChanged = false;
  /** A profile this job created because the session had none; the first one written stands. */
  private createdProfile: SessionProfile | undefined;
  private readonly workflows = new Map<SlateName, unknown>();
  /** Origins whose browser storage this job changed (undefined: cleared), to be written. */
  private readonly storageChanges = new Map<string, OriginStorage | undefined>();
  private errorDelta = 0;
  /** Set by a quarantine: the session was flushed, so this job commits nothing. */
  private discardChanges = false;
  /** A session counts each job once in its meta, however often the job commits. */
  private jobCounted = false;

  constructor(options: JobSessionOptions) {
    this.keys = options.keys;
    this.context = options.context;
    this.ephemeral = options.ephemeral ?? false;
    this.jar = options.jar ?? new SessionCookieJar();
    this.auth = options.auth;
    this.reads = options.reads ?? new Map();
    this.rewriteCookies = options.rewriteCookies ?? false;
    this.discarded = options.discarded ?? NONE;
    this.quarantined = options.quarantined ?? false;
    this.breakerOpenUntil = options.breakerOpenUntil;
  }

  get store(): SlateStore | undefined {
    return this.context.store;
  }

  get hashedId(): string {
    return this.context.hasher.hash(this.keys.tenant, this.keys.sessionId);
  }

  /** The version of a slate as this job last read it (0: absent). */
  version(name: SlateName): number {
    return this.reads.get(name)?.version ?? 0;
  }

  get meta(): SessionMeta | undefined {
    return this.reads.get('meta')?.value as SessionMeta | undefined;
  }

  get profile(): SessionProfile | undefined {
    return (this.reads.get('profile')?.value as SessionProfile | undefined) ?? this.createdProfile;
  }

  /**
   * The profile of this session, created from `fallback` when it has none. Of two jobs that both
   * create one, the first written stands: a session's identity does not flip between requests.
   */
  ensureProfile(fallback: () => SessionProfile): SessionProfile {
    const existing = this.profile;
    if (existing !== undefined) return existing;
    this.createdProfile = fallback();
    return this.createdProfile;
  }

  /**
   * Stores a new session's profile before its first request, for sessions whose identity must
   * not differ between workers even for a moment (bound to a proxy): of the jobs that claim one,
   * on any worker, the first's stands and each takes the one that stands. One write, on a
   * session's first jobs only. An unreadable stored profile is left to the commit to replace.
   */
  async claimProfile(profile: SessionProfile): Promise<SessionProfile> {
    const { store, config } = this.context;
    const existing = this.profile;
    if (existing !== undefined) return existing;
    if (store === undefined || this.ephemeral || this.discarded.has('profile'))
      return this.ensureProfile(() => profile);
    const result = await store.commit(this.keys, [
      { rule: 'create', name: 'profile', value: profile, ttlMs: config.profileTtlSeconds * 1000 },
    ]);
    const stands = result.ok ? result.slates.get('profile') : undefined;
    if (stands === undefined) return this.ensureProfile(() => profile);
    this.reads.set('profile', stands);
    return stands.value as SessionProfile;
  }

  /**
   * Quarantines the session after a compliance block: its slates are flushed and its next jobs
   * go to the DLQ until the flag expires. Nothing this job changed is committed.
   */
  async quarantine(): Promise<void> {
    const { store, config, counters } = this.context;
    counters.quarantined++;
    this.context.observer?.sessionInvalidated?.('quarantine');
    this.discardChanges = true;
    this.context.backlog.drop(this.keys);
    if (store !== undefined && !this.ephemeral)
      await store.flags.quarantine(this.keys, config.quarantineSeconds * 1000);
  }

  /**
   * Burns the session's identity after its proxy failed: cookies, login and profile go (unless
   * another job of the session did it first), so its next job starts fresh on its new proxy.
   * Nothing this job changed is committed. True when this job did it.
   */
  async rebind(): Promise<boolean> {
    const { store } = this.context;
    this.discardChanges = true;
    this.context.backlog.drop(this.keys);
    if (store === undefined || this.ephemeral) return false;
    this.context.observer?.sessionInvalidated?.('proxy_rotated');
    return store.flags.rebind(this.keys, this.version('profile'));
  }

  /** Counts a 429 against this session; true once it passed the configured threshold. */
  async rateLimitedTooOften(): Promise<boolean> {
    const { store, config } = this.context;
    if (store === undefined || this.ephemeral) return false;
    return (await store.flags.countRateLimited(this.keys, config.rateLimitWindowSeconds * 1000)) >= config.max429;
  }

  /** A workflow's state (pagination cursor, form progress), read from its own slate. */
  async workflow(name: string): Promise<unknown> {
    const slate = `workflow:${name}` as SlateName;
    if (!this.reads.has(slate) && this.context.store !== undefined && !this.ephemeral) {
      for (const [key, read] of await this.context.store.read(this.keys, [slate])) this.reads.set(key, read);
    }
    return this.workflows.has(slate) ? this.workflows.get(slate) : this.reads.get(slate)?.value;
  }

  /** The session's cookies as its jar holds them now (what a browser page starts with). */
  cookies(): Promise<Cookie[]> {
    return this.jar.liveCookies();
  }

  /**
   * The browser storage (localStorage) this session keeps, per origin (`https://host:port`), as
   * hydrated with this job's own changes on top. Only jobs opened with `storage` read it.
   */
  get storage(): ReadonlyMap<string, OriginStorage> {
    const stored = this.reads.get('storage')?.value as Record<string, OriginStorage> | undefined;
    const origins = new Map<string, OriginStorage>(Object.entries(stored ?? {}));
    for (const [origin, entries] of this.storageChanges)
      if (entries === undefined) origins.delete(origin);
      else origins.set(origin, entries);
    return origins;
  }

  /**
   * Keeps what a page left in an origin's storage (undefined: the origin's storage is gone),
   * written at commit as that origin's field alone: the latest writer of an origin wins.
   */
  setStorage(origin: string, entries: OriginStorage | undefined): void {
    this.storageChanges.set(origin, entries);
  }

  /**
   * Sets a workflow's state (undefined ends the flow and deletes its slate). If another job
   * moved the workflow on meanwhile, the commit fails the job as recoverable: it read stale state.
   */
  setWorkflow(name: string, state: unknown): void {
    this.workflows.set(`workflow:${name}` as SlateName, state);
  }

  setAuth(auth: AuthState): void {
    this.auth = auth;
    this.authChanged = true;
  }

  recordError(): void {
    this.errorDelta++;
  }

  /**
   * Re-reads cookies and auth (another worker logged this session in): this job's own cookie
   * changes so far are replayed onto the newer jar.
   */
  async refresh(): Promise<void> {
    if (this.context.store === undefined || this.ephemeral) return;
    const latest = await this.context.store.read(this.keys, ['cookies', 'auth']);
    for (const [name, read] of latest) this.reads.set(name, read);
    const { jar } = await SessionCookieJar.fromSlate(latest.get('cookies')?.value);
    const merged = await this.jar.replayOnto(jar);
    merged.changes.push(...this.jar.changes);
    this.jar = merged;
    this.auth = normalizeAuth(latest.get('auth')?.value);
    this.authChanged = false;
  }

  /** The writes of what this job changed, each by its slate's rule. */
  private async writes(): Promise<SlateWrite[]> {
    const { config } = this.context;
    const writes: SlateWrite[] = [];
    if (this.jar.changed.size > 0 || this.jar.stale.size > 0 || this.rewriteCookies) {
      const { set, unset } = await this.jar.fieldWrites(config.trackingCookies, this.rewriteCookies);
      if (set.length + unset.length > 0 || this.rewriteCookies)
        writes.push({ rule: 'fields', name: 'cookies', set, unset, ttlMs: config.cookiesTtlSeconds * 1000 });
    }
    const auth = this.auth;
    if (this.authChanged && auth !== undefined) {
      writes.push({
        name: 'auth',
        expectedVersion: this.version('auth'),
        value: auth,
        ttlMs: Math.max(1000, Date.parse(auth.keepUntil) - Date.now()),
      });
    } else if (this.discarded.has('auth')) {
      // An unreadable login is no login: delete it, unless a valid one was written meanwhile.
      writes.push({ name: 'auth', expectedVersion: this.version('auth'), value: undefined, ttlMs: 1000 });
    }
    if (this.storageChanges.size > 0) {
      const set: Array<[string, OriginStorage]> = [];
      const unset: string[] = [];
      for (const [origin, entries] of this.storageChanges)
        if (entries === undefined) unset.push(origin);
        else set.push([origin, entries]);
      writes.push({ rule: 'fields', name: 'storage', set, unset, ttlMs: config.cookiesTtlSeconds * 1000 });
    }
    const profile = this.createdProfile;
    const profileTtlMs = config.profileTtlSeconds * 1000;
    // An unreadable profile is replaced, unless another job replaced it first.
    if (profile !== undefined && this.discarded.has('profile'))
      writes.push({ name: 'profile', expectedVersion: this.version('profile'), value: profile, ttlMs: profileTtlMs });
    else if (profile !== undefined)
      writes.push({ rule: 'create', name: 'profile', value: profile, ttlMs: profileTtlMs });
    for (const [name, state] of this.workflows)
      writes.push({ name, expectedVersion: this.version(name), value: state, ttlMs: config.workflowTtlSeconds * 1000 });
    return writes;
  }

  /** This job's own meta counts, not yet written: a job counts once, however often it commits. */
  private ownMeta(): MetaDelta {
    return { jobs: this.jobCounted ? 0 : 1, errors: this.errorDelta, lastUsedMs: Date.now() };
  }

  /**
   * Writes what this job changed, in one command (shared with the other jobs of the session that
   * finish in the same turn). Only a login another worker changed meanwhile makes it read and
   * decide again. A store that is down is logged and counted, not fatal: the fetch happened.
   */
  async commit(): Promise<void> {
    const { store, config, logger, counters, backlog } = this.context;
    counters.cookiesRejected += this.jar.rejected;
    this.jar.rejected = 0;
    if (store === undefined || this.ephemeral || this.discardChanges) return;
    const evictedBefore = this.jar.evicted;
    let writes: SlateWrite[];
    try {
      writes = await this.writes();
    } catch (error) {
      counters.commitFailures++;
      logger.warn({ session_id: this.hashedId, err: (error as Error).message }, 'could not prepare session changes');
      return;
    }
    const own = this.ownMeta();
    // Only counters changed, and the session exists: its meta is written behind (MetaBacklog).
    if (writes.length === 0 && this.version('meta') > 0 && config.metaFlushMs > 0 && !backlog.closed) {
      backlog.add(this.keys, own);
      this.errorDelta = 0;
      this.jobCounted = true;
      return;
    }
    // Counts this worker's earlier jobs left for this session ride along with this write.
    const carried = backlog.take(this.keys);
    const delta = carried === undefined ? own : sumDeltas(own, carried);
    writes.push({ rule: 'counters', name: 'meta', ...delta, ttlMs: config.metaTtlSeconds * 1000 });
    let committed = false;
    let outcomeUnknown = false;
    try {
      for (let attempt = 1; attempt <= config.maxCommitAttempts; attempt++) {
        const started = performance.now();
        const result = await store.commit(this.keys, writes);
        this.context.observer?.stateSynced?.('commit', performance.now() - started);
        if (result.ok) {
          this.committed(writes, result.slates, result.versions, evictedBefore);
          if (carried !== undefined) counters.metaWrittenBehind += carried.jobs;
          committed = true;
          return;
        }
        counters.commitConflicts++;
        if (result.conflict.startsWith('workflow:'))
          throw new RecoverableError(
            'workflow_conflict',
            `session workflow ${result.conflict} moved on while this job ran`,
          );
        if (result.conflict === 'profile') {
          // Another job replaced the unreadable profile first: its profile stands.
          writes = writes.filter((write) => write.name !== 'profile');
          continue;
        }
        // Another worker wrote the login meanwhile: of the two, the later stands.
        const theirs = (await store.read(this.keys, ['auth'])).get('auth') ?? {
          name: 'auth',
          version: 0,
          value: undefined,
        };
        this.reads.set('auth', theirs);
        writes = writes.filter((write) => write.name !== 'auth');
        const stored = normalizeAuth(theirs.value);
        const mine = this.auth;
        if (this.authChanged && mine !== undefined) {
          if (stored === undefined || Date.parse(stored.changedAt) <= Date.parse(mine.changedAt))
            writes.push({
              name: 'auth',
              expectedVersion: theirs.version,
              value: mine,
              ttlMs: Math.max(1000, Date.parse(mine.keepUntil) - Date.now()),
            });
        } else if (theirs.value === undefined && theirs.version !== 0)
          writes.push({ name: 'auth', expectedVersion: theirs.version, value: undefined, ttlMs: 1000 });
      }
    } catch (error) {
      if (error instanceof RecoverableError) throw error;
      outcomeUnknown = mayHaveApplied(error);
      counters.commitFailures++;
      logger.warn(
        { session_id: this.hashedId, err: (error as Error).message },
        'session commit failed; this job ran but its session changes are lost',
      );
      return;
    } finally {
      // Earlier jobs' counts are not this job's to lose: they wait for the next write, unless
      // the write may have stored them already.
      if (!committed && carried !== undefined) {
        if (outcomeUnknown) counters.metaDropped += carried.jobs;
        else backlog.add(this.keys, carried);
      }
    }
    throw new RecoverableError(
      'session_contention',
      `session login changed ${config.maxCommitAttempts} times meanwhile`,
    );
  }

  /** After a write: what it stored is what this job reads from now on. */
  private committed(
    writes: readonly SlateWrite[],
    stored: ReadonlyMap<SlateName, SlateRead>,
    versions: ReadonlyMap<SlateName, number>,
    evictedBefore: number,
  ): void {
    const { counters, observer } = this.context;
    const evicted = this.jar.evicted - evictedBefore;
    if (evicted > 0) {
      counters.cookiesEvicted += evicted;
      observer?.cookiesEvicted?.(evicted);
    }
    const cookies = writes.find((write) => write.rule === 'fields' && write.name === 'cookies');
    if (cookies?.rule === 'fields')
      observer?.jarStored?.(JSON.stringify(cookies.set).length, cookies.set.length + cookies.unset.length);
    for (const write of writes) {
      const read = stored.get(write.name);
      if (read !== undefined) this.reads.set(write.name, read);
      else if (write.rule === 'fields')
        this.reads.set(write.name, { name: write.name, version: versions.get(write.name) ?? 0, value: undefined });
    }
    this.jar.written();
    this.authChanged = false;
    this.createdProfile = undefined;
    this.workflows.clear();
    this.storageChanges.clear();
    this.rewriteCookies = false;
    this.errorDelta = 0;
    this.jobCounted = true;
  }
}

/**
 * Whether a failed Redis call may still have been applied: it was sent and no answer came in
 * time. A refused or unsent command (connection down, offline queue off) was not applied.
 */
export function mayHaveApplied(error: unknown): boolean {
  return /timed out/i.test((error as Error | undefined)?.message ?? '');
}
