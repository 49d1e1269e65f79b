import type { CrawlObserver, SessionKeys, SessionsConfig } from '@crawlfleet/core';
import { RecoverableError } from '@crawlfleet/failures';
import type { Logger } from '@crawlfleet/log';
import type { SlateName, SlateRead, SlateStore, SlateWrite } from '@crawlfleet/slates';
import type { SessionHasher } from './session-hasher.js';
import { SessionCookieJar } from './session-jar.js';

/** Login state: never a password or token, only when it happened and how long it holds. */
export interface AuthState {
  loggedInAt: string;
  expiresAt: string;
}

/** The session's stable identity: written once by the first job, read by every job. */
export interface SessionProfile {
  userAgent: string;
  createdAt: string;
}

export interface SessionMeta {
  createdAt: string;
  lastUsedAt: string;
  jobs: number;
  errors: number;
}

/** Counts a worker keeps about sessions (exported as metrics by the observability work). */
export interface SessionCounters {
  created: number;
  ephemeral: number;
  quarantined: number;
  discardedSlates: number;
  cookiesDropped: number;
  cookiesRejected: number;
  commitConflicts: number;
  commitFailures: number;
}

export function newSessionCounters(): SessionCounters {
  return {
    created: 0,
    ephemeral: 0,
    quarantined: 0,
    discardedSlates: 0,
    cookiesDropped: 0,
    cookiesRejected: 0,
    commitConflicts: 0,
    commitFailures: 0,
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

export interface SessionContext {
  store: SlateStore | undefined;
  hasher: SessionHasher;
  observer?: CrawlObserver | undefined;
  config: SessionsConfig;
  logger: Logger;
  counters: SessionCounters;
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
    this.auth = latest.get('auth')?.value as AuthState | undefined;
    this.authChanged = false;
  }

  private changes(): SlateChange[] {
    const { config } = this.context;
    const now = new Date().toISOString();
    const changes: SlateChange[] = [];
    const jar = this.jar;
    if (jar.changes.length > 0 || this.rewriteCookies) {
      changes.push({
        name: 'cookies',
        ttlMs: config.cookiesTtlSeconds * 1000,
        apply: async (latest, first) => {
          if (first) return jar.toSlate(config.trackingCookies);
          const { jar: newer } = await SessionCookieJar.fromSlate(latest.value);
          return (await jar.replayOnto(newer)).toSlate(config.trackingCookies);
        },
      });
    }
    const auth = this.auth;
    if (this.authChanged && auth !== undefined) {
      changes.push({
        name: 'auth',
        ttlMs: Math.max(1000, Date.parse(auth.expiresAt) - Date.now()),
        apply: async (latest) => {
          const theirs = latest.value as AuthState | undefined;
          return theirs !== undefined && Date.parse(theirs.expiresAt) > Date.parse(auth.expiresAt) ? KEEP : auth;
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
    const errorDelta = this.errorDelta;
    const jobDelta = this.jobCounted ? 0 : 1;
    changes.push({
      name: 'meta',
      ttlMs: config.metaTtlSeconds * 1000,
      apply: async (latest) => {
        const theirs = latest.value as SessionMeta | undefined;
        return {
          createdAt: theirs?.createdAt ?? now,
          lastUsedAt: now,
          jobs: (theirs?.jobs ?? 0) + jobDelta,
          errors: (theirs?.errors ?? 0) + errorDelta,
        } satisfies SessionMeta;
      },
    });
    return changes;
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
    const names = changes.map((c) => c.name);
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
      counters.commitFailures++;
      logger.warn(
        { session_id: this.hashedId, err: (error as Error).message },
        'session commit failed; this job ran but its session changes are lost',
      );
      return;
    }
    throw new RecoverableError(
      'session_contention',
      `session commit met newer versions ${config.maxCommitAttempts} times`,
    );
  }
}

/** Opens job sessions on one slate store (or none: then every session is ephemeral). */
export class SessionManager {
  private readonly context: SessionContext;

  readonly counters: SessionCounters;

  constructor(options: {
    store: SlateStore | undefined;
    config: SessionsConfig;
    logger: Logger;
    hasher: SessionHasher;
    observer?: CrawlObserver | undefined;
  }) {
    this.counters = newSessionCounters();
    this.context = { ...options, counters: this.counters };
  }

  /** How this installation names sessions in logs and audit events. */
  get hasher(): SessionHasher {
    return this.context.hasher;
  }

  get store(): SlateStore | undefined {
    return this.context.store;
  }

  /**
   * Hydrates cookies, auth and meta in one round trip. A slate that fails to open or parse is
   * discarded with a warning and starts fresh; an unreachable store gives an ephemeral session.
   */
  async open(keys: SessionKeys): Promise<JobSession> {
    const { store, logger, counters } = this.context;
    const hashed = this.context.hasher.hash(keys.tenant, keys.sessionId);
    let reads: Map<SlateName, SlateRead>;
    let quarantined: boolean;
    let breakerOpenUntil: number | undefined;
    try {
      if (store === undefined) throw new Error('no session store configured');
      const started = performance.now();
      ({ slates: reads, quarantined, breakerOpenUntil } = await store.hydrate(keys, HYDRATED));
      this.context.observer?.stateSynced?.('hydrate', performance.now() - started);
    } catch (error) {
      counters.ephemeral++;
      this.context.observer?.sessionEphemeral?.();
      logger.warn(
        { session_id: hashed, err: (error as Error).message },
        'session store unreachable; this job runs on an ephemeral session',
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
          session_id: hashed,
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
    const auth = reads.get('auth')?.value as AuthState | undefined;
    const live = auth !== undefined && Date.parse(auth.expiresAt) > Date.now() ? auth : undefined;
    const discarded = new Set(
      [...reads.values()].filter((read) => read.discarded !== undefined).map((read) => read.name),
    );
    return new JobSession(
      keys,
      false,
      jar,
      live,
      reads,
      this.context,
      dirty || dropped > 0,
      discarded,
      quarantined,
      breakerOpenUntil,
    );
  }
}
