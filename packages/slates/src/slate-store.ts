import { createHash, randomBytes } from 'node:crypto';
import { type KeyLayout, pipelineEach, type RedisClient, type SessionKeys, TurnBatch } from '@crawlfleet/core';
import { EnvelopeError, type OpenFailure, open, seal } from './envelope.js';
import type { KeyRing } from './key-ring.js';
import { luaSource } from './lua-source.js';
import { envelopeDigest, OpenedSlates } from './opened-slates.js';
import { SessionFlags } from './session-flags.js';
import { FIXED_SLATES, ruleOf, type SlateName, shapeCode } from './slate-rules.js';
import type { ReadTicket, TrackedHydrates } from './tracked-hydrates.js';
import { mergeWrites, type SlateWrite, TurnBatches } from './turn-batches.js';

/** How the scripts read a slate key (and tell a malformed one), prepended to each. */
const READERS = `${luaSource('slate-version.lua')}\n${luaSource('read-hash.lua')}`;
const COMMIT_SESSION = `${READERS}\n${luaSource('commit-session.lua')}`;
const HYDRATE_SESSION = `${READERS}\n${luaSource('hydrate-session.lua')}`;

/** This process's incarnation ids: random per process, counted within it, so never reused. */
const INCARNATIONS = randomBytes(6).toString('base64url');
let incarnations = 0;
const nextIncarnation = () => `${INCARNATIONS}${(++incarnations).toString(36)}`;

/** Why a stored slate (or one of its fields) was not used. */
export type DiscardReason = OpenFailure | 'unparseable';

/** A slate as read: its version (0 when absent) and its value, when it could be used. */
export interface SlateRead {
  name: SlateName;
  version: number;
  /**
   * The value. A fields slate (cookies) reads as a frozen record of its opened fields, or, when
   * `legacy`, as the whole value an older version sealed in one envelope.
   */
  value: unknown;
  /** Set when a stored value could not be opened or parsed: it was discarded, never used. */
  discarded?: { reason: DiscardReason; payloadHash: string } | undefined;
  /** Fields of a fields slate that failed to open (not `unknown_key`): left out, to be deleted. */
  discardedFields?: readonly string[] | undefined;
  /** A fields slate still in an older version's one-envelope form: rewrite it as fields. */
  legacy?: boolean | undefined;
}

export type { SlateWrite } from './turn-batches.js';

/** What `hydrate` answers. */
export interface HydrateAnswer {
  slates: Map<SlateName, SlateRead>;
  quarantined: boolean;
  breakerOpenUntil: number | undefined;
}

/** A healthy session's hydrate, as `TrackedHydrates` keeps it: the slates it read, and their reads. */
export interface KeptHydrate {
  names: readonly SlateName[];
  slates: ReadonlyMap<SlateName, SlateRead>;
}

export type CommitResult =
  | {
      ok: true;
      /** Each written slate's new version (0 where deleted). */
      versions: Map<SlateName, number>;
      /**
       * Each written slate as stored now, where the write tells it: a `create` gives the value
       * that stands (this one, or the first writer's), `counters` the sums, `cas` what it wrote.
       */
      slates: Map<SlateName, SlateRead>;
      /** The session did not exist before this write (its meta was created). */
      created: boolean;
    }
  | { ok: false; conflict: SlateName; version: number };

type ScriptAnswer = Array<string | number | null | ScriptAnswer>;

type WithScripts = RedisClient & {
  cfCommitSession(numKeys: number, ...args: Array<string | number>): Promise<ScriptAnswer>;
  cfHydrateSession(numKeys: number, ...keysAndArgs: string[]): Promise<ScriptAnswer>;
};

type PipelineWithScripts = ReturnType<RedisClient['pipeline']> & {
  cfHydrateSession(numKeys: number, ...keysAndArgs: string[]): PipelineWithScripts;
};

/** Sessions whose slate `readEach` reads per pipeline. */
const READ_EACH_BATCH = 500;

/** A short, non-reversible fingerprint of a stored payload, for logs. */
export function payloadHash(payload: string): string {
  return createHash('sha256').update(payload).digest('hex').slice(0, 16);
}

/**
 * The associated data of a sealed field: its slate's key and the field, so neither can move.
 * Field `d` is an older version's whole value, sealed for the key alone.
 */
export function fieldData(key: string, field: string): string {
  return field === 'd' ? key : `${key}\n${field}`;
}

/** The fields every fields slate reserves: its version, incarnation, and an older version's one envelope. */
const RESERVED_FIELDS = new Set(['v', 'd', 'i']);

/** A write the store refuses before sending anything: a caller's mistake, never the data's. */
export class SlateWriteError extends Error {
  override readonly name = 'SlateWriteError';

  constructor(
    readonly reason: 'reserved_field',
    message: string,
  ) {
    super(message);
  }
}

/** How a fields slate value this worker wrote was made from the one it held before. */
export interface FieldsDerivation {
  /** Weakly: a chain of values each holding the one before would keep every one alive. */
  base: WeakRef<object>;
  set: ReadonlyArray<readonly [string, unknown]>;
  unset: readonly string[];
}

const derivations = new WeakMap<object, FieldsDerivation>();

/**
 * How a fields slate value came from an earlier one by this worker's own write, so what was
 * built from the earlier value (a cookie jar) can be built on instead of from scratch.
 */
export function derivedFrom(value: object): FieldsDerivation | undefined {
  return derivations.get(value);
}

/** A fields slate's token as the hydrate script compares it: incarnation and version. */
function fieldsToken(incarnation: string, version: number): string {
  return `${incarnation}:${version}`;
}

/**
 * Reads and writes session slates, each by its rule (`SLATE_RULES`). Reading the slates a job
 * needs is one command; writing what it changed is one command too, shared with the other jobs
 * of its session that finish in the same turn of the event loop, and only a compare-and-set can
 * meet a conflict.
 */
export class SlateStore {
  private readonly redis: WithScripts;
  private readonly opened: OpenedSlates;
  private readonly tracked: TrackedHydrates<KeptHydrate> | undefined;
  private readonly batches: TurnBatches<CommitResult>;
  /** Hydrates on their way, by session: a job that starts meanwhile shares the read. */
  private readonly hydrating = new Map<string, { names: readonly SlateName[]; answer: Promise<HydrateAnswer> }>();
  /** New sessions joining the registry: one ZADD for those a worker created in the same turn. */
  private readonly registering = new TurnBatch<string, void>(async (members) => {
    const now = Date.now();
    await this.redis.zadd(this.keys.sessionRegistry, ...members.flatMap((member) => [now, member]));
    return members.map(() => undefined);
  });
  /** The session's flags (quarantine, 429 count, login lease) on the same connection. */
  readonly flags: SessionFlags;

  /**
   * `openedSlates` is how many opened slates the store keeps to skip receiving and decrypting
   * them again while unchanged; 0 keeps none. Default 4096. `tracked`, started on this same
   * connection, answers a healthy session's hydrate without Redis while nothing it read has
   * changed (a worker's store has it; commands do not).
   */
  constructor(
    redis: RedisClient,
    readonly keys: KeyLayout,
    readonly ring: KeyRing,
    options: { openedSlates?: number; tracked?: TrackedHydrates<KeptHydrate> | undefined } = {},
  ) {
    this.opened = new OpenedSlates(options.openedSlates ?? 4096);
    this.tracked = options.tracked;
    // What this worker holds of a cookies slate is known by its version, which a change made
    // without a write (tampering) does not move: tracking's word that the key changed drops it.
    this.tracked?.onInvalidated((key) => {
      if (key === undefined) this.opened.clear();
      else this.opened.delete(key);
    });
    if (!('cfCommitSession' in redis)) redis.defineCommand('cfCommitSession', { lua: COMMIT_SESSION });
    if (!('cfHydrateSession' in redis)) redis.defineCommand('cfHydrateSession', { lua: HYDRATE_SESSION });
    this.redis = redis as WithScripts;
    this.flags = new SessionFlags(redis, (session) => this.forget(session));
    this.batches = new TurnBatches((session, writes) => this.write(session, writes));
  }

  session(tenant: string, sessionId: string): SessionKeys {
    return this.keys.session(tenant, sessionId);
  }

  /** The session connection, for state kept beside the slates (the breaker flags). */
  get connection(): RedisClient {
    return this.redis;
  }

  /** This worker wrote the session's keys outside `commit`: what it kept of them goes. */
  forget(session: SessionKeys): void {
    this.hydrating.delete(session.base);
    this.tracked?.forget(session);
    for (const name of FIXED_SLATES) this.opened.delete(session.slate(name));
  }

  /** Reads slates in one command. A value that fails to open or parse is reported, not used. */
  async read(session: SessionKeys, names: readonly SlateName[]): Promise<Map<SlateName, SlateRead>> {
    return (await this.readSession(session, names)).slates;
  }

  /**
   * One slate of each of many sessions (what an admin command looks through), in pipelined
   * batches of `READ_EACH_BATCH`: a round trip per batch, never one per session. Each read is
   * the hydrate script's, decoded as `read` decodes it (a value that fails to open is reported,
   * not used); nothing read is kept. The answers are in the order of `sessions`.
   */
  async readEach(sessions: readonly SessionKeys[], name: SlateName): Promise<SlateRead[]> {
    const shape = shapeCode(ruleOf(name).shape);
    const reads: SlateRead[] = [];
    for (let start = 0; start < sessions.length; start += READ_EACH_BATCH) {
      const batch = sessions.slice(start, start + READ_EACH_BATCH);
      // One pipeline per master on a cluster: each session's keys share its own slot.
      const answers = await pipelineEach(
        this.redis,
        batch,
        (session) => session.base,
        (pipeline, session) =>
          (pipeline as PipelineWithScripts).cfHydrateSession(
            3,
            session.slate(name),
            session.quarantine,
            session.breaker,
            shape,
            '',
          ),
      );
      batch.forEach((session, i) => {
        const [error, answer] = answers[i]?.[0] ?? [new Error('no answer to a pipelined read'), null];
        if (error) throw error;
        const [version, stored] = answer as ScriptAnswer;
        reads.push(this.decodeStored(session.slate(name), name, Number(version ?? 0), stored));
      });
    }
    return reads;
  }

  /**
   * Reads slates, whether the session is quarantined and until when its breaker is open: one
   * script, so one command on the hot path, and none while tracking says nothing changed.
   */
  async hydrate(session: SessionKeys, names: readonly SlateName[]): Promise<HydrateAnswer> {
    const kept = this.keptHydrate(session, names);
    if (kept !== undefined) return kept;
    // The jobs of a session that start together (a new session's first ones) share one read;
    // a read sent before this worker's latest write of the session is not shared (`write`).
    const inflight = this.hydrating.get(session.base);
    if (inflight !== undefined && sameNames(inflight.names, names)) return copyAnswer(await inflight.answer);
    const answer = this.hydrateOnce(session, names);
    this.hydrating.set(session.base, { names, answer });
    try {
      // The job that sent the read keeps its answer; those that shared it get copies.
      return await answer;
    } finally {
      if (this.hydrating.get(session.base)?.answer === answer) this.hydrating.delete(session.base);
    }
  }

  /** A healthy session's hydrate as tracking keeps it, while nothing it read has changed. */
  private keptHydrate(session: SessionKeys, names: readonly SlateName[]): HydrateAnswer | undefined {
    const kept = this.tracked?.get(session);
    if (kept === undefined || !sameNames(kept.names, names)) return undefined;
    // A copy: a job's session updates its own map as it commits.
    return { slates: new Map(kept.slates), quarantined: false, breakerOpenUntil: undefined };
  }

  private async hydrateOnce(session: SessionKeys, names: readonly SlateName[]): Promise<HydrateAnswer> {
    const tracked = this.tracked;
    if (tracked === undefined || !names.every((name) => ruleOf(name).reused)) return this.readSession(session, names);
    const ticket = tracked.reading(session, [
      ...names.map((name) => session.slate(name)),
      session.quarantine,
      session.breaker,
    ]);
    let answer: HydrateAnswer;
    try {
      answer = await this.readSession(session, names, ticket);
    } catch (error) {
      tracked.release(ticket);
      throw error;
    }
    const healthy =
      !answer.quarantined &&
      answer.breakerOpenUntil === undefined &&
      [...answer.slates.values()].every(
        (read) => read.discarded === undefined && read.discardedFields === undefined && read.legacy !== true,
      );
    if (healthy) tracked.keep(ticket, { names: [...names], slates: new Map(answer.slates) });
    else tracked.release(ticket);
    return answer;
  }

  /**
   * The hydrate script. `ticket` marks a read whose answer may be kept: a second command for a
   * slate (its envelope is the one held, at another version) spoils it.
   */
  private async readSession(
    session: SessionKeys,
    names: readonly SlateName[],
    ticket?: ReadTicket,
  ): Promise<HydrateAnswer> {
    const keys = names.map((name) => session.slate(name));
    const rules = names.map(ruleOf);
    const known = keys.map((key, i) => (rules[i]?.reused === true ? this.opened.get(key) : undefined));
    const answer = await this.redis.cfHydrateSession(
      keys.length + 2,
      ...keys,
      session.quarantine,
      session.breaker,
      ...rules.map((rule) => shapeCode(rule.shape)),
      ...known.map((entry) => entry?.digest ?? ''),
    );
    const slates = new Map<SlateName, SlateRead>();
    const unsure: SlateName[] = [];
    names.forEach((name, i) => {
      const version = Number(answer[i * 2] ?? 0);
      const stored = answer[i * 2 + 1];
      const key = keys[i] as string;
      const rule = rules[i] as (typeof rules)[number];
      const mine = known[i];
      if (stored === 1 && rule.shape !== 'counters') {
        if (mine !== undefined && mine.version === version) {
          slates.set(name, { name, version, value: mine.value });
          return;
        }
        // The envelope is the one this worker opened, but not at the version it remembers: read
        // it again rather than guess.
        unsure.push(name);
        return;
      }
      const pairs = Array.isArray(stored) ? (stored as string[]) : null;
      // A fields slate's incarnation: set when it is created, new when it is deleted and written again.
      const incarnation = rule.shape === 'fields' ? fieldValue(pairs, 'i') : undefined;
      const read = this.decodeStored(key, name, version, stored);
      if (rule.reused && version > 0 && read.discarded === undefined && read.legacy !== true) {
        if (rule.shape === 'sealed' && typeof stored === 'string')
          this.opened.set(key, { version, digest: envelopeDigest(stored), value: read.value });
        else if (rule.shape === 'fields' && read.discardedFields === undefined && incarnation !== undefined)
          this.opened.set(key, { version, digest: fieldsToken(incarnation, version), value: read.value });
      } else this.opened.delete(key);
      slates.set(name, read);
    });
    if (unsure.length > 0 && ticket !== undefined) this.tracked?.forget(session);
    if (unsure.length > 0) {
      for (const name of unsure) this.opened.delete(session.slate(name));
      const again = await this.readSession(session, unsure);
      for (const [name, read] of again.slates) slates.set(name, read);
    }
    const breaker = answer[names.length * 2 + 1];
    return {
      slates,
      quarantined: answer[names.length * 2] === 1,
      breakerOpenUntil: typeof breaker === 'string' ? Number(breaker) : undefined,
    };
  }

  /** A slate as the hydrate script answered it (its version, then what it holds), decoded by its shape. */
  private decodeStored(key: string, name: SlateName, version: number, stored: unknown): SlateRead {
    const shape = ruleOf(name).shape;
    const pairs = Array.isArray(stored) ? (stored as string[]) : null;
    if (shape === 'sealed') return this.decode(key, name, version, typeof stored === 'string' ? stored : null);
    return shape === 'fields' ? this.decodeFields(key, name, version, pairs) : decodeCounters(name, version, pairs);
  }

  private decode(key: string, name: SlateName, version: number, envelope: string | null): SlateRead {
    // Not a well-formed `{v, d}` hash (another type, a tampered version): as if it failed to open.
    if (version < 0) return { name, version, value: undefined, discarded: { reason: 'malformed', payloadHash: 'n/a' } };
    if (envelope === null) return { name, version, value: undefined };
    const opened = this.openValue(key, envelope);
    return 'reason' in opened
      ? { name, version, value: undefined, discarded: opened }
      : { name, version, value: opened.value };
  }

  /** A sealed value, opened and parsed; or why not. */
  private openValue(
    data: string,
    envelope: string,
  ): { value: unknown } | { reason: DiscardReason; payloadHash: string } {
    let text: string;
    try {
      text = open(this.ring, data, envelope);
    } catch (error) {
      return {
        reason: error instanceof EnvelopeError ? error.reason : 'malformed',
        payloadHash: payloadHash(envelope),
      };
    }
    try {
      return { value: JSON.parse(text) };
    } catch {
      return { reason: 'unparseable', payloadHash: payloadHash(envelope) };
    }
  }

  /**
   * A fields slate: every field opened with its own associated data. A field sealed with a key
   * this ring lacks makes the whole slate unusable (`unknown_key`: another worker can read it,
   * this one must not write it); any other failure drops that field alone.
   */
  private decodeFields(key: string, name: SlateName, version: number, pairs: string[] | null): SlateRead {
    if (version < 0 || (pairs === null && version !== 0))
      return { name, version, value: undefined, discarded: { reason: 'malformed', payloadHash: 'n/a' } };
    if (pairs === null) return { name, version, value: undefined };
    const value: Record<string, unknown> = {};
    const dropped: string[] = [];
    let legacy: unknown;
    for (let i = 0; i + 1 < pairs.length; i += 2) {
      const field = pairs[i] as string;
      const envelope = pairs[i + 1] as string;
      if (field === 'i') continue;
      const opened = this.openValue(fieldData(key, field), envelope);
      if ('reason' in opened) {
        if (opened.reason === 'unknown_key') return { name, version, value: undefined, discarded: opened };
        dropped.push(field);
      } else if (field === 'd') legacy = opened.value;
      else value[field] = opened.value;
    }
    if (legacy !== undefined) return { name, version, value: legacy, legacy: true };
    return {
      name,
      version,
      value: Object.freeze(value),
      ...(dropped.length > 0 ? { discardedFields: dropped } : {}),
    };
  }

  /**
   * Writes what changed, by each slate's rule, in one command. Writes of one session without a
   * compare-and-set that arrive in the same turn of the event loop share that command; values
   * are sealed here, never stored in clear.
   */
  commit(session: SessionKeys, writes: readonly SlateWrite[]): Promise<CommitResult> {
    for (const write of writes)
      if (write.rule === 'fields')
        for (const [field] of write.set)
          if (RESERVED_FIELDS.has(field))
            return Promise.reject(new SlateWriteError('reserved_field', `slate field name "${field}" is reserved`));
    if (writes.length === 0)
      return Promise.resolve({ ok: true, versions: new Map(), slates: new Map(), created: false });
    if (writes.some((write) => (write.rule ?? 'cas') === 'cas')) return this.write(session, writes);
    return this.batches.add(session, writes);
  }

  private async write(session: SessionKeys, given: readonly SlateWrite[]): Promise<CommitResult> {
    const writes = mergeWrites(given);
    const keys = writes.map((w) => session.slate(w.name));
    const args: Array<string | number> = [writes.length];
    const sealed = new Map<number, string>();
    /** Each fields write's values as sealed, by field: what this worker then holds is parsed from them. */
    const texts = new Map<number, Map<string, string>>();
    writes.forEach((write, i) => {
      const key = keys[i] as string;
      const rule = write.rule ?? 'cas';
      args.push(rule, write.name, Math.max(1, Math.round(write.ttlMs)));
      if (rule === 'cas' || rule === 'create') {
        const value = 'value' in write ? write.value : undefined;
        const envelope = value === undefined ? '' : seal(this.ring, key, JSON.stringify(value));
        if (envelope !== '') sealed.set(i, envelope);
        if (write.rule === 'create') args.push(envelope);
        else args.push('expectedVersion' in write ? write.expectedVersion : 0, envelope);
      } else if (write.rule === 'fields') {
        const pairs: string[] = [];
        const written = new Map<string, string>();
        for (const [field, value] of write.set) {
          const text = JSON.stringify(value);
          written.set(field, text);
          pairs.push(field, seal(this.ring, fieldData(key, field), text));
        }
        texts.set(i, written);
        for (const field of write.unset) pairs.push(field, '');
        args.push(nextIncarnation(), pairs.length / 2, ...pairs);
      } else if (write.rule === 'counters')
        args.push(write.jobs, write.errors, Math.round(write.lastUsedMs), write.existing === true ? 1 : 0);
    });
    const seq = this.tracked?.writing() ?? 0;
    this.hydrating.delete(session.base);
    let answer: ScriptAnswer;
    try {
      answer = await this.redis.cfCommitSession(writes.length + 1, session.index, ...keys, ...args);
    } catch (error) {
      // It may have been applied: nothing kept of the session can be trusted.
      this.forget(session);
      throw error;
    }
    if (answer[0] === -1) {
      this.forget(session);
      const index = Number(answer[1]) - 1;
      return { ok: false, conflict: (writes[index] as SlateWrite).name, version: Number(answer[2]) };
    }
    const versions = new Map<SlateName, number>();
    const slates = new Map<SlateName, SlateRead>();
    let created = false;
    writes.forEach((write, i) => {
      const key = keys[i] as string;
      const reply = answer[i + 1];
      const rule = write.rule ?? 'cas';
      if (rule === 'counters') {
        if (!Array.isArray(reply)) {
          versions.set(write.name, 0);
          return;
        }
        const [isNew, createdAt, lastUsedAt, jobs, errors] = (reply as Array<string | number>).map(Number);
        created ||= isNew === 1;
        versions.set(write.name, 1);
        slates.set(write.name, {
          name: write.name,
          version: 1,
          value: Object.freeze(metaValue(createdAt, lastUsedAt, jobs, errors)),
        });
        return;
      }
      if (rule === 'fields' && write.rule === 'fields') {
        const [stored, incarnation] = reply as [number, string];
        const version = Number(stored);
        const token = fieldsToken(incarnation, version - 1);
        versions.set(write.name, version);
        // Version 1: the slate was created by this write, which holds all of it.
        const mine = version === 1 ? { version: 0, value: {}, digest: token } : this.opened.get(key);
        if (mine !== undefined && mine.digest === token) {
          // Nobody else wrote since this worker's read: what it holds, with its own writes, is
          // what is stored.
          const value: Record<string, unknown> = { ...(mine.value as Record<string, unknown>) };
          for (const [field, text] of texts.get(i) ?? []) value[field] = JSON.parse(text);
          for (const field of write.unset) delete value[field];
          this.opened.set(key, { version, digest: fieldsToken(incarnation, version), value: Object.freeze(value) });
          if (version > 1)
            derivations.set(value, { base: new WeakRef(mine.value as object), set: write.set, unset: write.unset });
          slates.set(write.name, { name: write.name, version, value: this.opened.get(key)?.value });
        } else this.opened.delete(key);
        return;
      }
      const [version, theirs] = rule === 'create' ? (reply as [number, string | null]) : [Number(reply), null];
      versions.set(write.name, Number(version));
      const envelope = typeof theirs === 'string' ? theirs : sealed.get(i);
      if (envelope === undefined || Number(version) === 0) {
        this.opened.delete(key);
        slates.set(write.name, { name: write.name, version: Number(version), value: undefined });
        return;
      }
      const read = this.decode(key, write.name, Number(version), envelope);
      if (ruleOf(write.name).reused && read.discarded === undefined)
        this.opened.set(key, { version: Number(version), digest: envelopeDigest(envelope), value: read.value });
      else this.opened.delete(key);
      slates.set(
        write.name,
        read.discarded === undefined ? { ...read, value: this.opened.get(key)?.value ?? read.value } : read,
      );
    });
    this.tracked?.wrote(session, seq, (kept) => {
      const next = new Map(kept.slates);
      for (const name of versions.keys()) {
        const now = slates.get(name);
        if (now === undefined || now.value === undefined) return undefined;
        // The kept cookies are the ones this write was applied to (`slates` has them only then).
        if (ruleOf(name).shape === 'fields' && kept.slates.get(name)?.version !== now.version - 1) return undefined;
        if (next.has(name)) next.set(name, now);
      }
      return { names: kept.names, slates: next };
    });
    // A new session joins the registry that admin operations list from: one ZADD for the
    // sessions this worker created in the same turn.
    if (created) await this.registering.add(`${session.tenant}/${session.sessionId}`);
    return { ok: true, versions, slates, created };
  }
}

/** A field's value in a flat `field, value, ...` list, or undefined. */
function fieldValue(pairs: readonly string[] | null, field: string): string | undefined {
  if (pairs === null) return undefined;
  for (let i = 0; i + 1 < pairs.length; i += 2) if (pairs[i] === field) return pairs[i + 1];
  return undefined;
}

/** A meta slate's value from its counters (times in ms since the epoch). */
function metaValue(createdAt: number | undefined, lastUsedAt: number | undefined, jobs = 0, errors = 0) {
  const iso = (ms: number | undefined) => new Date(Number.isFinite(ms) ? Number(ms) : 0).toISOString();
  return { createdAt: iso(createdAt), lastUsedAt: iso(lastUsedAt ?? createdAt), jobs, errors };
}

/** A counters slate (meta): plain counts and times, nothing sealed. */
function decodeCounters(name: SlateName, version: number, pairs: string[] | null): SlateRead {
  if (version < 0) return { name, version, value: undefined, discarded: { reason: 'malformed', payloadHash: 'n/a' } };
  if (pairs === null) return { name, version: 0, value: undefined };
  const fields = new Map<string, string>();
  for (let i = 0; i + 1 < pairs.length; i += 2) fields.set(pairs[i] as string, pairs[i + 1] as string);
  const number = (field: string) => {
    const value = Number(fields.get(field));
    return Number.isFinite(value) ? value : undefined;
  };
  // A count that is not an integer was not written by crawlfleet: the next write starts over.
  for (const field of ['jobs', 'errors'])
    if (fields.has(field) && !/^\d{1,18}$/.test(fields.get(field) ?? ''))
      return { name, version: -1, value: undefined, discarded: { reason: 'malformed', payloadHash: 'n/a' } };
  return {
    name,
    version: 1,
    value: Object.freeze(
      metaValue(number('createdAt') ?? number('lastUsedAt'), number('lastUsedAt'), number('jobs'), number('errors')),
    ),
  };
}

/** An answer of its own for each job that shares a hydrate: a job's session updates its map. */
function copyAnswer(answer: HydrateAnswer): HydrateAnswer {
  return { ...answer, slates: new Map(answer.slates) };
}

function sameNames(a: readonly SlateName[], b: readonly SlateName[]): boolean {
  return a === b || (a.length === b.length && a.every((name, i) => name === b[i]));
}
