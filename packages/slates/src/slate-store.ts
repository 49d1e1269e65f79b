import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type KeyLayout, parseSessionKey, type SessionKeys } from '@crawlfleet/core';
import type { Redis } from 'ioredis';
import { EnvelopeError, envelopeKid, type OpenFailure, open, seal } from './envelope.js';
import type { KeyRing } from './key-ring.js';
import { envelopeDigest, OpenedSlates } from './opened-slates.js';
import type { ReadTicket, TrackedHydrates } from './tracked-hydrates.js';

const lua = (name: string) => readFileSync(new URL(`../lua/${name}`, import.meta.url), 'utf8');
/** How the slate scripts read a slate key (and tell a malformed one), prepended to each. */
const SLATE_VERSION = lua('slate-version.lua');
const COMMIT_SLATES = `${SLATE_VERSION}\n${lua('commit-slates.lua')}`;
const RELEASE_LEASE = readFileSync(new URL('../lua/release-lease.lua', import.meta.url), 'utf8');
const TAKE_PROBE = readFileSync(new URL('../lua/take-probe.lua', import.meta.url), 'utf8');
const HYDRATE_SESSION = `${SLATE_VERSION}\n${lua('hydrate-session.lua')}`;

/** `cookies`, `auth`, `profile`, `meta`, or `workflow:<name>`. */
export type SlateName = 'cookies' | 'auth' | 'profile' | 'meta' | `workflow:${string}`;

/** Why a stored slate was not used. */
export type DiscardReason = OpenFailure | 'unparseable';

/** A slate as read: its version (0 when absent) and its value, when it could be used. */
export interface SlateRead {
  name: SlateName;
  version: number;
  value: unknown;
  /** Set when a stored value could not be opened or parsed: it was discarded, never used. */
  discarded?: { reason: DiscardReason; payloadHash: string } | undefined;
}

/** One slate to write: the version it was read at, its new value (undefined deletes it). */
export interface SlateWrite {
  name: SlateName;
  expectedVersion: number;
  value: unknown;
  ttlMs: number;
}

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
  | { ok: true; versions: Map<SlateName, number> }
  | { ok: false; conflict: SlateName; version: number };

type WithCommit = Redis & {
  cfCommitSlates(numKeys: number, ...args: Array<string | number>): Promise<number[]>;
  cfReleaseLease(key: string, token: string): Promise<number>;
  cfTakeProbe(breaker: string, probe: string, ms: number): Promise<number>;
  cfHydrateSession(numKeys: number, ...keysAndTags: string[]): Promise<Array<string | number | null>>;
};

/** What the key check value holds, sealed. */
const KEY_CHECK_TEXT = '"crawlfleet key check"';

/** Whether this process's key ring opens the fleet's sessions (`SlateStore.checkKeyRing`). */
export type KeyRingCheck =
  | { state: 'created' | 'readable' }
  /** Sealed with a key this ring does not hold: `kid`, the key id the fleet uses. */
  | { state: 'unreadable'; kid: string };

/** A short, non-reversible fingerprint of a stored payload, for logs. */
export function payloadHash(payload: string): string {
  return createHash('sha256').update(payload).digest('hex').slice(0, 16);
}

/**
 * Reads and writes session slates. Each slate is a Redis hash `{v: version, d: envelope}` with
 * its own TTL. Reading the slates a job needs is one round trip; committing the ones it changed
 * is one Lua script that checks every version and writes all or nothing.
 */
export class SlateStore {
  private readonly redis: WithCommit;
  private readonly opened: OpenedSlates;
  private readonly tracked: TrackedHydrates<KeptHydrate> | undefined;

  /**
   * `openedSlates` is how many opened slates (cookies, auth, profile, meta) the store keeps to
   * skip receiving and decrypting them again while unchanged; 0 keeps none. Default 4096.
   * `tracked`, started on this same connection, answers a healthy session's hydrate without
   * Redis while nothing it read has changed (a worker's store has it; commands do not).
   */
  constructor(
    redis: Redis,
    private readonly keys: KeyLayout,
    private readonly ring: KeyRing,
    options: { openedSlates?: number; tracked?: TrackedHydrates<KeptHydrate> | undefined } = {},
  ) {
    this.opened = new OpenedSlates(options.openedSlates ?? 4096);
    this.tracked = options.tracked;
    if (!('cfCommitSlates' in redis)) redis.defineCommand('cfCommitSlates', { lua: COMMIT_SLATES });
    if (!('cfReleaseLease' in redis)) redis.defineCommand('cfReleaseLease', { numberOfKeys: 1, lua: RELEASE_LEASE });
    if (!('cfTakeProbe' in redis)) redis.defineCommand('cfTakeProbe', { numberOfKeys: 2, lua: TAKE_PROBE });
    if (!('cfHydrateSession' in redis)) redis.defineCommand('cfHydrateSession', { lua: HYDRATE_SESSION });
    this.redis = redis as WithCommit;
  }

  session(tenant: string, sessionId: string): SessionKeys {
    return this.keys.session(tenant, sessionId);
  }

  /** Reads slates in one round trip. A value that fails to open or parse is reported, not used. */
  async read(session: SessionKeys, names: readonly SlateName[]): Promise<Map<SlateName, SlateRead>> {
    return (await this.readSession(session, names)).slates;
  }

  /**
   * Reads slates, whether the session is quarantined and until when its breaker is open: one
   * script, so one command and one round trip on the hot path.
   */
  async hydrate(session: SessionKeys, names: readonly SlateName[]): Promise<HydrateAnswer> {
    const tracked = this.tracked;
    if (tracked === undefined || !names.every(reusable)) return this.readSession(session, names);
    const kept = tracked.get(session);
    // A copy: a job's session updates its own map as it commits.
    if (kept !== undefined && sameNames(kept.names, names))
      return { slates: new Map(kept.slates), quarantined: false, breakerOpenUntil: undefined };
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
      [...answer.slates.values()].every((read) => read.discarded === undefined);
    if (healthy) tracked.keep(ticket, { names: [...names], slates: new Map(answer.slates) });
    else tracked.release(ticket);
    return answer;
  }

  /**
   * The hydrate script. `ticket` marks a read whose answer may be kept: its re-read of a slate
   * (an unexpected version) spoils it, since that read is a second command.
   */
  private async readSession(
    session: SessionKeys,
    names: readonly SlateName[],
    ticket?: ReadTicket,
  ): Promise<HydrateAnswer> {
    const keys = names.map((name) => session.slate(name));
    const known = keys.map((key, i) => (reusable(names[i] as SlateName) ? this.opened.get(key) : undefined));
    keys.push(session.quarantine, session.breaker);
    const answer = await this.redis.cfHydrateSession(keys.length, ...keys, ...known.map((k) => k?.digest ?? ''));
    const slates = new Map<SlateName, SlateRead>();
    const unsure: SlateName[] = [];
    names.forEach((name, i) => {
      const version = Number(answer[i * 2] ?? 0);
      const envelope = answer[i * 2 + 1];
      const mine = known[i];
      if (envelope === 1) {
        if (mine !== undefined && mine.version === version) {
          slates.set(name, { name, version, value: mine.value });
          return;
        }
        // The envelope is the one this worker opened, but not at the version it remembers: read
        // it again rather than guess.
        unsure.push(name);
        return;
      }
      const key = keys[i] as string;
      const read = this.decode(key, name, version, typeof envelope === 'string' ? envelope : null);
      if (typeof envelope === 'string' && read.discarded === undefined && reusable(name))
        this.opened.set(key, { version, digest: envelopeDigest(envelope), value: read.value });
      else this.opened.delete(key);
      slates.set(name, read);
    });
    if (unsure.length > 0 && ticket !== undefined) this.tracked?.forget(session);
    for (const name of unsure) {
      const key = session.slate(name);
      this.opened.delete(key);
      const [version, envelope] = await this.redis.hmget(key, 'v', 'd');
      slates.set(name, this.decode(key, name, Number(version ?? 0), envelope ?? null));
    }
    const breaker = answer[names.length * 2 + 1];
    return {
      slates,
      quarantined: answer[names.length * 2] === 1,
      breakerOpenUntil: typeof breaker === 'string' ? Number(breaker) : undefined,
    };
  }

  /**
   * Quarantines a session: deletes every slate (its cookies and login are burnt) and sets the
   * quarantine flag for `ms`, in one MULTI.
   */
  async quarantine(session: SessionKeys, ms: number): Promise<void> {
    this.tracked?.forget(session);
    const slates = (await scanKeys(this.redis, `${session.base}:*`)).filter((key) => key !== session.quarantine);
    const multi = this.redis.multi();
    if (slates.length > 0) multi.del(...slates);
    multi.set(session.quarantine, new Date().toISOString(), 'PX', ms);
    // Again: a hydrate of this worker may have been answered during the SCAN.
    this.tracked?.forget(session);
    await multi.exec();
  }

  /**
   * Opens the session's breaker for the fleet until `until`. A worker's own trip opens it only
   * if it is not open already (one open period per incident, however many workers noticed);
   * a failed probe (`reopen`) starts a new period and frees the probe. True when it opened.
   */
  async openBreaker(session: SessionKeys, until: number, reopen = false): Promise<boolean> {
    this.tracked?.forget(session);
    const keepMs = Math.max(1, until - Date.now()) + 10 * 60_000;
    if (!reopen) return (await this.redis.set(session.breaker, String(until), 'PX', keepMs, 'NX')) === 'OK';
    await this.redis.multi().set(session.breaker, String(until), 'PX', keepMs).del(session.breakerProbe).exec();
    return true;
  }

  /**
   * Takes the one half-open probe of the session's breaker, for `ms`, if it is still open:
   * `probe` (this caller probes), `busy` (another job does), or `closed` (run as usual).
   */
  async tryBreakerProbe(session: SessionKeys, ms: number): Promise<'probe' | 'busy' | 'closed'> {
    const answer = await this.redis.cfTakeProbe(session.breaker, session.breakerProbe, ms);
    return answer === 1 ? 'probe' : answer === 0 ? 'busy' : 'closed';
  }

  /** Closes the session's breaker for the fleet. */
  async closeBreaker(session: SessionKeys): Promise<void> {
    this.tracked?.forget(session);
    await this.redis.del(session.breaker, session.breakerProbe);
  }

  /** Counts a 429 for the session within a sliding window; returns the count so far. */
  async countRateLimited(session: SessionKeys, windowMs: number): Promise<number> {
    const answers = await this.redis
      .multi()
      .incr(session.rateLimited)
      .pexpire(session.rateLimited, windowMs, 'NX')
      .exec();
    return Number(answers?.[0]?.[1] ?? 0);
  }

  private decode(key: string, name: SlateName, version: number, envelope: string | null): SlateRead {
    // Not a well-formed `{v, d}` hash (another type, a tampered version): as if it failed to open.
    if (version < 0) return { name, version, value: undefined, discarded: { reason: 'malformed', payloadHash: 'n/a' } };
    if (envelope === null) return { name, version, value: undefined };
    let text: string;
    try {
      text = open(this.ring, key, envelope);
    } catch (error) {
      const reason = error instanceof EnvelopeError ? error.reason : 'malformed';
      return { name, version, value: undefined, discarded: { reason, payloadHash: payloadHash(envelope) } };
    }
    try {
      return { name, version, value: JSON.parse(text) };
    } catch {
      return {
        name,
        version,
        value: undefined,
        discarded: { reason: 'unparseable', payloadHash: payloadHash(envelope) },
      };
    }
  }

  /** Writes every slate or none: one round trip. Values are sealed here, never stored in clear. */
  async commit(session: SessionKeys, writes: readonly SlateWrite[]): Promise<CommitResult> {
    if (writes.length === 0) return { ok: true, versions: new Map() };
    const keys = writes.map((w) => session.slate(w.name));
    this.tracked?.forget(session);
    const texts = writes.map((w) => (w.value === undefined ? undefined : JSON.stringify(w.value)));
    const envelopes = texts.map((text, i) => (text === undefined ? '' : seal(this.ring, keys[i] as string, text)));
    const answer = await this.redis.cfCommitSlates(
      writes.length,
      ...keys,
      ...writes.map((w) => w.expectedVersion),
      ...envelopes,
      ...writes.map((w) => Math.max(1, Math.round(w.ttlMs))),
    );
    if (answer[0] === -1) {
      const index = Number(answer[1]) - 1;
      return { ok: false, conflict: (writes[index] as SlateWrite).name, version: Number(answer[2]) };
    }
    writes.forEach((write, i) => {
      const key = keys[i] as string;
      const text = texts[i];
      if (text === undefined || !reusable(write.name)) this.opened.delete(key);
      // The value as a fresh read would give it: through JSON.
      else
        this.opened.set(key, {
          version: Number(answer[i + 1]),
          digest: envelopeDigest(envelopes[i] as string),
          value: JSON.parse(text),
        });
    });
    return { ok: true, versions: new Map(writes.map((w, i) => [w.name, Number(answer[i + 1])])) };
  }

  /**
   * Whether this ring opens the fleet's sessions: the first process with a ring seals a check
   * value into Redis; every later one opens it. A ring that cannot (another installation's keys,
   * or a key missing from CRAWLFLEET_KEYS) reads every session as unreadable, and must say so.
   */
  async checkKeyRing(): Promise<KeyRingCheck> {
    const key = this.keys.keyCheck;
    if ((await this.redis.set(key, seal(this.ring, key, KEY_CHECK_TEXT), 'NX')) === 'OK') return { state: 'created' };
    const stored = await this.redis.get(key);
    if (stored === null) return { state: 'created' };
    try {
      open(this.ring, key, stored);
      return { state: 'readable' };
    } catch {
      return { state: 'unreadable', kid: envelopeKid(stored) ?? 'unknown' };
    }
  }

  /** Takes the session's login lease for `ms` unless someone holds it. */
  async tryAuthLease(session: SessionKeys, token: string, ms: number): Promise<boolean> {
    return (await this.redis.set(session.authLease, token, 'PX', ms, 'NX')) === 'OK';
  }

  /** Gives the lease back, if this token still holds it. */
  async releaseAuthLease(session: SessionKeys, token: string): Promise<boolean> {
    return (await this.redis.cfReleaseLease(session.authLease, token)) === 1;
  }

  /**
   * Re-seals every slate not sealed with the ring's current key, keeping its TTL. Safe while
   * workers run: each re-seal is a versioned commit, and a slate a worker changed meanwhile is
   * already sealed with the current key (or is picked up by the next pass). Unreadable slates
   * are left alone and counted.
   */
  async rotate(
    onProgress?: (done: number) => void,
  ): Promise<{ resealed: number; current: number; unreadable: number; moved: number }> {
    const tally = { resealed: 0, current: 0, unreadable: 0, moved: 0 };
    const keys = (await scanKeys(this.redis, this.keys.sessionPattern)).filter(
      (key) => !key.includes(':lease:') && !key.includes(':flag:'),
    );
    for (const [index, key] of keys.entries()) {
      const [[readError, fields], [, ttl]] = (await this.redis.pipeline().hmget(key, 'v', 'd').pttl(key).exec()) as [
        [Error | null, Array<string | null> | undefined],
        [Error | null, number],
      ];
      // A key that is not a slate hash (WRONGTYPE) or whose version was tampered with is left to
      // the worker that next reads it (it replaces it), and counted.
      const [version, envelope] = fields ?? [];
      if (readError !== null || (typeof version === 'string' && !/^[1-9]\d{0,14}$/.test(version))) {
        tally.unreadable++;
        continue;
      }
      if (envelope === null || envelope === undefined) continue;
      if (envelopeKid(envelope) === this.ring.current.kid) tally.current++;
      else {
        let text: string;
        try {
          text = open(this.ring, key, envelope);
        } catch {
          tally.unreadable++;
          continue;
        }
        const resealed = seal(this.ring, key, text);
        const answer = await this.redis.cfCommitSlates(
          1,
          key,
          Number(version ?? 0),
          resealed,
          ttl > 0 ? ttl : 30 * 24 * 3600 * 1000,
        );
        if (answer[0] === -1) tally.moved++;
        else tally.resealed++;
      }
      onProgress?.(index + 1);
    }
    // The check value follows the ring's current key, so a ring without the old key passes.
    if ((await this.checkKeyRing()).state === 'readable')
      await this.redis.set(this.keys.keyCheck, seal(this.ring, this.keys.keyCheck, KEY_CHECK_TEXT));
    return tally;
  }
}

function sameNames(a: readonly SlateName[], b: readonly SlateName[]): boolean {
  return a === b || (a.length === b.length && a.every((name, i) => name === b[i]));
}

/** Slates whose values only crawlfleet reads; a workflow's state goes to user code, fresh each time. */
function reusable(name: SlateName): boolean {
  return name === 'cookies' || name === 'auth' || name === 'profile' || name === 'meta';
}

async function scanKeys(redis: Redis, pattern: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    found.push(...keys);
  } while (cursor !== '0');
  return found;
}

export interface SessionListing {
  tenant: string;
  sessionId: string;
  slates: string[];
}

/** Every session that has at least one slate, optionally of one tenant. Needs no key ring. */
export async function listSessions(redis: Redis, keys: KeyLayout, tenant?: string): Promise<SessionListing[]> {
  const bySession = new Map<string, SessionListing>();
  for (const key of await scanKeys(redis, keys.sessionPattern)) {
    const parsed = parseSessionKey(keys.prefix, key);
    if (parsed === undefined || parsed.slate.startsWith('lease:') || parsed.slate.startsWith('flag:')) continue;
    if (tenant !== undefined && parsed.tenant !== tenant) continue;
    const id = `${parsed.tenant}/${parsed.sessionId}`;
    const entry = bySession.get(id) ?? { tenant: parsed.tenant, sessionId: parsed.sessionId, slates: [] };
    entry.slates.push(parsed.slate);
    bySession.set(id, entry);
  }
  return [...bySession.values()].sort((a, b) =>
    `${a.tenant}/${a.sessionId}`.localeCompare(`${b.tenant}/${b.sessionId}`),
  );
}

/** Deletes every slate of a session, and its lease. Returns how many keys went. Needs no key ring. */
export async function purgeSession(redis: Redis, session: SessionKeys): Promise<number> {
  const found = await scanKeys(redis, `${session.base}:*`);
  return found.length === 0 ? 0 : redis.del(...found);
}
