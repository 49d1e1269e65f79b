import type { CrawlObserver, SessionKeys, SessionsConfig } from '@crawlfleet/core';
import { RecoverableError } from '@crawlfleet/failures';
import type { Logger } from '@crawlfleet/log';
import type { SlateName, SlateRead, SlateStore, SlateWrite } from '@crawlfleet/slates';
import { MetaBacklog, type MetaDelta, mergeMeta, type SessionMeta, sumDeltas } from './meta-backlog.js';
import type { SessionHasher } from './session-hasher.js';
import { SessionCookieJar } from './session-jar.js';

/** A login the site refused: no job of the session tries to log in again before `until`. */
export interface RefusedLogin {
  at: string;
  until: string;
  /** Refusals in a row: each doubles the cool-down (the session's login breaker). */
  count: number;
  status?: number | undefined;
  /** Why, in a line (no secret), and the start of the answer, redacted. */
  message: string;
  snippet?: string | undefined;
}

/**
 * A session's login, sealed in its `auth` slate like every slate: never a password; the tokens
 * the site issued when it uses them. Of two writers, the later `changedAt` wins.
 */
export interface AuthState {
  changedAt: string;
  /** The last login or refresh that succeeded; with `expiresAt`, a login that holds until then. */
  loggedInAt?: string | undefined;
  expiresAt?: string | undefined;
  /** The access token requests carry (`auth.login.token`). */
  token?: string | undefined;
  refreshToken?: string | undefined;
  refused?: RefusedLogin | undefined;
  /** How long Redis keeps the slate (a refresh token may outlive the access token). */
  keepUntil: string;
}

/** An auth slate as stored; slates of older workers held only `loggedInAt` and `expiresAt`. */
export function normalizeAuth(value: unknown): AuthState | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const state = value as Partial<AuthState>;
  if (typeof state.changedAt === 'string' && typeof state.keepUntil === 'string') return state as AuthState;
  if (typeof state.loggedInAt === 'string' && typeof state.expiresAt === 'string')
    return { ...state, changedAt: state.loggedInAt, keepUntil: state.expiresAt } as AuthState;
  return undefined;
}

/** The session's stable identity: written once by the first job, read by every job. */
export interface SessionProfile {
  userAgent: string;
  createdAt: string;
}

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

/** Returned by a merge that decides the stored value should stay as it is. */
const KEEP: unique symbol = Symbol('keep');

/** How one changed slate is written: applied to the latest stored value at every try. */
interface SlateChange {
  name: SlateName;
  ttlMs: number;
  apply(latest: SlateRead, first: boolean): Promise<unknown>;
}

const HYDRATED: readonly SlateName[] = ['cookies', 'auth', 'profile', 'meta'];
/** For a tenant without a login hook: nothing ever writes its sessions' auth slate. */
const HYDRATED_WITHOUT_AUTH: readonly SlateName[] = ['cookies', 'profile', 'meta'];
const NONE_DISCARDED: ReadonlySet<SlateName> = new Set();

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

/**
 * A job's view of its session: hydrated at the start, used without any lock, committed at the
 * end with compare-and-set. When another job committed first, each slate merges by its own
 * rule (ARCHITECTURE.md): cookies replay this job's Set-Cookie changes onto the newer jar, auth
 * keeps the later expiry, profile keeps the first writer's, meta adds its counters, workflow
 * makes the job retry.
 */
export class JobSession {
  private authChanged = false;
  /** A profile this job created because the session had none; committed first-writer-wins. */
  private createdProfile: SessionProfile | undefined;
  private readonly workflows = new Map<SlateName, unknown>();
  private errorDelta = 0;
  /** Set by a quarantine: the session was flushed, so this job commits nothing. */
  private discardChanges = false;
  /** A session counts each job once in its meta, however often the job commits. */
  private jobCounted = false;
  /** When this job read its session: a login after this moment is newer than what it saw. */
  readonly openedAt = Date.now();
  /** Set when hydration dropped cookies or a slate: the cleaned value is written back. */
  private rewriteCookies: boolean;
  /** Cookies the jar bound dropped in the last try of a commit. */
  private evictedByCommit = 0;

  constructor(
    readonly keys: SessionKeys,
    readonly ephemeral: boolean,
    public jar: SessionCookieJar,
    public auth: AuthState | undefined,
    private reads: Map<SlateName, SlateRead>,
    private readonly context: SessionContext,
    dirty: boolean,
    /** Slates that failed to open: they are rewritten (or deleted) by this job's commit. */
    private readonly discarded: ReadonlySet<SlateName> = new Set(),
    /** True while the session is quarantined after a compliance block: do not use it. */
    readonly quarantined = false,
    /** When the session's breaker is open for the fleet: until this time (ms since the epoch). */
    readonly breakerOpenUntil: number | undefined = undefined,
  ) {
    this.rewriteCookies = dirty;
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
   * The profile of this session, created from `fallback` when it has none. Two jobs that both
   * create one keep the first committed: a session's identity does not flip between requests.
   */
  ensureProfile(fallback: () => SessionProfile): SessionProfile {
    const existing = this.profile;
    if (existing !== undefined) return existing;
    this.createdProfile = fallback();
    return this.createdProfile;
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
    if (store !== undefined && !this.ephemeral) await store.quarantine(this.keys, config.quarantineSeconds * 1000);
  }

  /** Counts a 429 against this session; true once it passed the configured threshold. */
  async rateLimitedTooOften(): Promise<boolean> {
    const { store, config } = this.context;
    if (store === undefined || this.ephemeral) return false;
    return (await store.countRateLimited(this.keys, config.rateLimitWindowSeconds * 1000)) >= config.max429;
  }

  /** A workflow's state (pagination cursor, form progress), read from its own slate. */
  async workflow(name: string): Promise<unknown> {
    const slate = `workflow:${name}` as SlateName;
    if (!this.reads.has(slate) && this.context.store !== undefined && !this.ephemeral) {
      for (const [key, read] of await this.context.store.read(this.keys, [slate])) this.reads.set(key, read);
    }
    return this.workflows.has(slate) ? this.workflows.get(slate) : this.reads.get(slate)?.value;
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

  private changes(): SlateChange[] {
    const { config } = this.context;
    const changes: SlateChange[] = [];
    const jar = this.jar;
    if (jar.changes.length > 0 || this.rewriteCookies) {
      changes.push({
        name: 'cookies',
        ttlMs: config.cookiesTtlSeconds * 1000,
        apply: async (latest, first) => {
          const target = first ? jar : await jar.replayOnto((await SessionCookieJar.fromSlate(latest.value)).jar);
          const before = target.evicted;
          const value = await target.toSlate(config.trackingCookies);
          // Counted once the write lands (a retried try bounds the jar again).
          this.evictedByCommit = target.evicted - before;
          return value;
        },
      });
    }
    const auth = this.auth;
    if (this.authChanged && auth !== undefined) {
      changes.push({
        name: 'auth',
        ttlMs: Math.max(1000, Date.parse(auth.keepUntil) - Date.now()),
        apply: async (latest) => {
          // A login, refresh or refusal written after this one (by another worker) stands.
          const theirs = normalizeAuth(latest.value);
          return theirs !== undefined && Date.parse(theirs.changedAt) > Date.parse(auth.changedAt) ? KEEP : auth;
        },
      });
    }
    if (this.discarded.has('auth') && !this.authChanged) {
      // An unreadable login is no login: delete it, unless a valid one was written meanwhile.
      changes.push({
        name: 'auth',
        ttlMs: 1000,
        apply: async (latest) => (latest.value === undefined ? undefined : KEEP),
      });
    }
    const profile = this.createdProfile;
    if (profile !== undefined) {
      changes.push({
        name: 'profile',
        ttlMs: config.profileTtlSeconds * 1000,
        // First writer wins; an unreadable profile counts as none.
        apply: async (latest) => (latest.value === undefined ? profile : KEEP),
      });
    }
    for (const [name, state] of this.workflows) {
      const readVersion = this.version(name);
      changes.push({
        name,
        ttlMs: config.workflowTtlSeconds * 1000,
        apply: async (latest) => {
          if (latest.version !== readVersion)
            throw new RecoverableError('workflow_conflict', `session ${name} moved on while this job ran`);
          return state;
        },
      });
    }
    return changes;
  }

  /** This job's own meta counts, not yet written: a job counts once, however often it commits. */
  private ownMeta(): MetaDelta {
    return { jobs: this.jobCounted ? 0 : 1, errors: this.errorDelta, lastUsedMs: Date.now() };
  }

  /**
   * Commits what this job changed, merging with newer versions, all slates in one script per
   * try. A store that is down is logged and counted, not fatal: the fetch already happened.
   */
  async commit(): Promise<void> {
    const { store, config, logger, counters } = this.context;
    counters.cookiesRejected += this.jar.rejected;
    this.jar.rejected = 0;
    if (store === undefined || this.ephemeral || this.discardChanges) return;
    const changes = this.changes();
    const own = this.ownMeta();
    // Only counters changed, and the session exists: its meta is written behind (MetaBacklog).
    if (changes.length === 0 && this.version('meta') > 0 && config.metaFlushMs > 0 && !this.context.backlog.closed) {
      this.context.backlog.add(this.keys, own);
      this.errorDelta = 0;
      this.jobCounted = true;
      return;
    }
    // Counts this worker's earlier jobs left for this session ride along with this commit.
    const carried = this.context.backlog.take(this.keys);
    const delta = carried === undefined ? own : sumDeltas(own, carried);
    changes.push({
      name: 'meta',
      ttlMs: config.metaTtlSeconds * 1000,
      apply: async (latest) => mergeMeta(latest.value as SessionMeta | undefined, delta),
    });
    const names = changes.map((c) => c.name);
    let committed = false;
    let outcomeUnknown = false;
    try {
      for (let attempt = 1; attempt <= config.maxCommitAttempts; attempt++) {
        const writes: SlateWrite[] = [];
        for (const change of changes) {
          const latest = this.reads.get(change.name) ?? { name: change.name, version: 0, value: undefined };
          const value = await change.apply(latest, attempt === 1);
          if (value !== KEEP)
            writes.push({ name: change.name, expectedVersion: latest.version, value, ttlMs: change.ttlMs });
        }
        const started = performance.now();
        const result = await store.commit(this.keys, writes);
        this.context.observer?.stateSynced?.('commit', performance.now() - started);
        if (result.ok) {
          if (this.evictedByCommit > 0) {
            counters.cookiesEvicted += this.evictedByCommit;
            this.context.observer?.cookiesEvicted?.(this.evictedByCommit);
          }
          this.evictedByCommit = 0;
          const jarWrite = writes.find((write) => write.name === 'cookies');
          if (jarWrite !== undefined)
            this.context.observer?.jarStored?.(JSON.stringify(jarWrite.value ?? null).length, this.jar.changes.length);
          // Remember what was written: a later commit of this job merges onto it.
          for (const write of writes)
            this.reads.set(write.name, {
              name: write.name,
              version: result.versions.get(write.name) ?? 0,
              value: write.value,
            });
          this.jar.changes.length = 0;
          this.authChanged = false;
          this.createdProfile = undefined;
          this.workflows.clear();
          this.rewriteCookies = false;
          this.errorDelta = 0;
          this.jobCounted = true;
          if (carried !== undefined) counters.metaWrittenBehind += carried.jobs;
          committed = true;
          return;
        }
        counters.commitConflicts++;
        if (result.conflict.startsWith('workflow:')) {
          throw new RecoverableError(
            'workflow_conflict',
            `session workflow ${result.conflict} moved on while this job ran`,
          );
        }
        for (const [name, read] of await store.read(this.keys, names)) this.reads.set(name, read);
        // The window between re-read and commit is one round trip: try again at once, then
        // spread out with a little jitter when many jobs of one session keep colliding.
        if (attempt > 1)
          await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(20, 2 ** attempt)));
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
      // the commit may have stored them already.
      if (!committed && carried !== undefined) {
        if (outcomeUnknown) counters.metaDropped += carried.jobs;
        else this.context.backlog.add(this.keys, carried);
      }
    }
    throw new RecoverableError(
      'session_contention',
      `session commit met newer versions ${config.maxCommitAttempts} times`,
    );
  }
}

/** Sessions whose meta counts one flush writes at a time. */
const FLUSH_BATCH = 100;

/**
 * Whether a failed Redis call may still have been applied: it was sent and no answer came in
 * time. A refused or unsent command (connection down, offline queue off) was not applied.
 */
function mayHaveApplied(error: unknown): boolean {
  return /timed out/i.test((error as Error | undefined)?.message ?? '');
}

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
   * Writes every waiting meta count (each session's meta read, merged and committed with
   * compare-and-set). A session whose meta is gone (purged, quarantined, expired) is not brought
   * back for a count. Counts that could not be written wait for the next flush.
   */
  flushMeta(): Promise<void> {
    this.flushing ??= this.writeBacklog().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  /**
   * Stops the flush timer and writes what waits (a few tries for counts that met contention or
   * a failure): call when the worker drains. What is still waiting then is dropped, and logged.
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
            else if (outcome === 'contended') backlog.add(keys, delta);
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
  private async writeMeta(
    store: SlateStore,
    keys: SessionKeys,
    delta: MetaDelta,
  ): Promise<'written' | 'gone' | 'contended'> {
    const { config } = this.context;
    for (let attempt = 1; attempt <= config.maxCommitAttempts; attempt++) {
      const read = (await store.read(keys, ['meta'])).get('meta');
      if (read === undefined || read.version === 0) return 'gone';
      const value = mergeMeta(read.value as SessionMeta | undefined, delta);
      const result = await store.commit(keys, [
        { name: 'meta', expectedVersion: read.version, value, ttlMs: config.metaTtlSeconds * 1000 },
      ]);
      if (result.ok) return 'written';
      this.counters.commitConflicts++;
    }
    return 'contended';
  }

  /** How this installation names sessions in logs and audit events. */
  get hasher(): SessionHasher {
    return this.context.hasher;
  }

  get store(): SlateStore | undefined {
    return this.context.store;
  }

  /**
   * Hydrates cookies, auth (unless `auth: false`: the tenant has no login hook), profile and meta
   * in one round trip. A slate that fails to open or parse is discarded with a warning and starts
   * fresh; an unreachable store gives an ephemeral session.
   */
  async open(keys: SessionKeys, options: { auth?: boolean } = {}): Promise<JobSession> {
    const { store, logger, counters } = this.context;
    // Only warnings name the session: its keyed hash is not worth computing for every job.
    const hashed = () => this.context.hasher.hash(keys.tenant, keys.sessionId);
    let reads: Map<SlateName, SlateRead>;
    let quarantined: boolean;
    let breakerOpenUntil: number | undefined;
    try {
      if (store === undefined) throw new Error('no session store configured');
      const started = performance.now();
      const names = options.auth === false ? HYDRATED_WITHOUT_AUTH : HYDRATED;
      ({ slates: reads, quarantined, breakerOpenUntil } = await store.hydrate(keys, names));
      this.context.observer?.stateSynced?.('hydrate', performance.now() - started);
    } catch (error) {
      counters.ephemeral++;
      this.context.observer?.sessionEphemeral?.();
      logger.warn(
        { session_id: hashed(), err: (error as Error).message },
        'session store unreachable; this job runs on an ephemeral session',
      );
      return new JobSession(keys, true, new SessionCookieJar(), undefined, new Map(), this.context, false);
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
      return new JobSession(keys, true, new SessionCookieJar(), undefined, new Map(), this.context, false);
    }
    let dirty = false;
    for (const read of reads.values()) {
      if (read.discarded === undefined) continue;
      counters.discardedSlates++;
      this.context.observer?.sessionInvalidated?.('discarded_slate');
      dirty = true;
      logger.warn(
        {
          session_id: hashed(),
          slate: read.name,
          reason: read.discarded.reason,
          payload_hash: read.discarded.payloadHash,
        },
        'discarded a session slate that failed to open; it starts fresh',
      );
    }
    if (reads.get('meta')?.version === 0) {
      counters.created++;
      this.context.observer?.sessionCreated?.();
    }
    const { jar, dropped } = await SessionCookieJar.fromSlate(reads.get('cookies')?.value);
    counters.cookiesDropped += dropped;
    // A stored jar over its limits (written before they existed) is bounded and written back.
    const evicted = jar.evicted;
    jar.evicted = 0;
    if (evicted > 0) {
      counters.cookiesEvicted += evicted;
      this.context.observer?.cookiesEvicted?.(evicted);
    }
    const auth = normalizeAuth(reads.get('auth')?.value);
    const discarded = dirty
      ? new Set([...reads.values()].filter((read) => read.discarded !== undefined).map((read) => read.name))
      : NONE_DISCARDED;
    return new JobSession(
      keys,
      false,
      jar,
      auth,
      reads,
      this.context,
      dirty || dropped > 0 || evicted > 0,
      discarded,
      quarantined,
      breakerOpenUntil,
    );
  }
}
