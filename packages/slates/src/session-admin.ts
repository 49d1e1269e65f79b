import {
  type KeyLayout,
  mastersOf,
  parseSessionKey,
  pipelineEach,
  type RedisClient,
  type SessionKeys,
} from '@crawlfleet/core';
import { envelopeKid, open, seal } from './envelope.js';
import type { KeyRing } from './key-ring.js';
import { luaSource } from './lua-source.js';
import { clearSession } from './session-flags.js';
import { ruleOf, type SlateName } from './slate-rules.js';
import { fieldData, SlateStore } from './slate-store.js';

const RESEAL_FIELD = luaSource('reseal-field.lua');

/** What the key check value holds, sealed. */
const KEY_CHECK_TEXT = '"crawlfleet key check"';

/** How long the index of a session indexed by the one-time scan is kept at least. */
const INDEX_TTL_MS = 30 * 24 * 3600 * 1000;

/** Sessions read from the registry per pipeline. */
const BATCH = 500;

/** Whether this process's key ring opens the fleet's sessions (`SessionAdmin.checkKeyRing`). */
export type KeyRingCheck =
  | { state: 'created' | 'readable' }
  /** Sealed with a key this ring does not hold: `kid`, the key id the fleet uses. */
  | { state: 'unreadable'; kid: string };

export interface SessionListing {
  tenant: string;
  sessionId: string;
  slates: string[];
}

export interface RotateTally {
  resealed: number;
  current: number;
  unreadable: number;
  moved: number;
}

/**
 * Operations on the fleet's sessions as a whole: list, purge, re-seal under a new key, check a
 * key ring. They find sessions through the session registry and each session's slates through
 * its index, never by scanning the keyspace (slow on one node, and wrong on a cluster).
 */
export class SessionAdmin {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: KeyLayout,
  ) {}

  /** `tenant/session` of every registered session, optionally of one tenant. */
  private async registered(tenant?: string): Promise<SessionKeys[]> {
    await this.indexOlderSessions();
    const members = await this.redis.zrange(this.keys.sessionRegistry, 0, -1);
    const sessions: SessionKeys[] = [];
    for (const member of members) {
      const slash = member.indexOf('/');
      if (slash <= 0) continue;
      const owner = member.slice(0, slash);
      if (tenant === undefined || owner === tenant) sessions.push(this.keys.session(owner, member.slice(slash + 1)));
    }
    return sessions;
  }

  /**
   * Every session that holds at least one slate, optionally of one tenant, sorted. Sessions
   * whose slates all expired leave the registry here.
   */
  async list(tenant?: string): Promise<SessionListing[]> {
    const listed: SessionListing[] = [];
    const gone: string[] = [];
    const sessions = await this.registered(tenant);
    for (let start = 0; start < sessions.length; start += BATCH) {
      const batch = sessions.slice(start, start + BATCH);
      const held = await this.slatesOf(batch);
      batch.forEach((session, i) => {
        const slates = held[i] ?? [];
        if (slates.length === 0) gone.push(`${session.tenant}/${session.sessionId}`);
        else listed.push({ tenant: session.tenant, sessionId: session.sessionId, slates });
      });
    }
    if (gone.length > 0) await this.redis.zrem(this.keys.sessionRegistry, ...gone);
    return listed.sort((a, b) => `${a.tenant}/${a.sessionId}`.localeCompare(`${b.tenant}/${b.sessionId}`));
  }

  /** The slates each session holds now: its index, less what expired. */
  private async slatesOf(sessions: readonly SessionKeys[]): Promise<string[][]> {
    // One pipeline per master on a cluster: each session's keys share its own slot.
    const bySession = (session: SessionKeys) => session.base;
    const indexes = await pipelineEach(this.redis, sessions, bySession, (pipeline, session) => {
      pipeline.smembers(session.index);
    });
    const names = sessions.map((_, i) => [...((indexes[i]?.[0]?.[1] as string[] | undefined) ?? [])].sort());
    const listed = sessions.map((session, i) => ({ session, names: names[i] ?? [] }));
    const exists = await pipelineEach(
      this.redis,
      listed,
      ({ session }) => bySession(session),
      (pipeline, entry) => {
        for (const name of entry.names) pipeline.exists(entry.session.slate(name));
      },
    );
    return listed.map((entry, i) => entry.names.filter((_, at) => Number(exists[i]?.[at]?.[1] ?? 0) === 1));
  }

  /**
   * Deletes every key of a session (slates, index, flags, lease) and its registry entry. Returns
   * how many keys went.
   */
  async purge(session: SessionKeys): Promise<number> {
    await this.indexOlderSessions();
    const deleted = await clearSession(this.redis, session);
    await this.redis.zrem(this.keys.sessionRegistry, `${session.tenant}/${session.sessionId}`);
    return deleted;
  }

  /**
   * Whether this ring opens the fleet's sessions: the first process with a ring seals a check
   * value into Redis; every later one opens it. A ring that cannot (another installation's keys,
   * or a key missing from CRAWLFLEET_KEYS) reads every session as unreadable, and must say so.
   */
  async checkKeyRing(ring: KeyRing): Promise<KeyRingCheck> {
    const key = this.keys.keyCheck;
    if ((await this.redis.set(key, seal(ring, key, KEY_CHECK_TEXT), 'NX')) === 'OK') return { state: 'created' };
    const stored = await this.redis.get(key);
    if (stored === null) return { state: 'created' };
    try {
      open(ring, key, stored);
      return { state: 'readable' };
    } catch {
      return { state: 'unreadable', kid: envelopeKid(stored) ?? 'unknown' };
    }
  }

  /**
   * Re-seals every slate (and every cookie field) not sealed with the ring's current key,
   * keeping its TTL. Safe while workers run: a sealed slate is re-sealed with compare-and-set and
   * a field only if it still holds what was read, and whatever a worker wrote meanwhile is
   * sealed with the current key already (or is picked up by the next pass). Unreadable values
   * are left alone and counted.
   */
  async rotate(ring: KeyRing, onProgress?: (done: number) => void): Promise<RotateTally> {
    const tally: RotateTally = { resealed: 0, current: 0, unreadable: 0, moved: 0 };
    const store = new SlateStore(this.redis, this.keys, ring, { openedSlates: 0 });
    if (!('cfResealField' in this.redis))
      this.redis.defineCommand('cfResealField', { numberOfKeys: 1, lua: RESEAL_FIELD });
    const reseal = this.redis as RedisClient & {
      cfResealField(key: string, field: string, read: string, sealed: string): Promise<number>;
    };
    let done = 0;
    for (const session of await this.registered()) {
      const names = (await this.redis.smembers(session.index)) as SlateName[];
      for (const name of names) {
        const key = session.slate(name);
        const rule = ruleOf(name);
        if (rule.shape === 'counters') continue;
        const [[readError, fields], [, ttl]] = (await this.redis.pipeline().hgetall(key).pttl(key).exec()) as [
          [Error | null, Record<string, string> | undefined],
          [Error | null, number],
        ];
        if (readError !== null) {
          tally.unreadable++;
          continue;
        }
        const version = fields?.v;
        if (typeof version === 'string' && !/^[1-9]\d{0,14}$/.test(version)) {
          tally.unreadable++;
          continue;
        }
        if (rule.shape === 'fields') {
          for (const [field, envelope] of Object.entries(fields ?? {})) {
            if (field === 'v' || field === 'i') continue;
            if (envelopeKid(envelope) === ring.current.kid) {
              tally.current++;
              continue;
            }
            const data = fieldData(key, field);
            let text: string;
            try {
              text = open(ring, data, envelope);
            } catch {
              tally.unreadable++;
              continue;
            }
            if ((await reseal.cfResealField(key, field, envelope, seal(ring, data, text))) === 1) tally.resealed++;
            else tally.moved++;
          }
          continue;
        }
        const envelope = fields?.d;
        if (envelope === undefined) continue;
        if (envelopeKid(envelope) === ring.current.kid) {
          tally.current++;
          continue;
        }
        let value: unknown;
        try {
          value = JSON.parse(open(ring, key, envelope));
        } catch {
          tally.unreadable++;
          continue;
        }
        const answer = await store.commit(session, [
          { name, expectedVersion: Number(version ?? 0), value, ttlMs: ttl > 0 ? ttl : 30 * 24 * 3600 * 1000 },
        ]);
        if (answer.ok) tally.resealed++;
        else tally.moved++;
      }
      onProgress?.(++done);
    }
    // The check value follows the ring's current key, so a ring without the old key passes.
    if ((await this.checkKeyRing(ring)).state === 'readable')
      await this.redis.set(this.keys.keyCheck, seal(ring, this.keys.keyCheck, KEY_CHECK_TEXT));
    return tally;
  }

  /**
   * Sessions written by versions without a registry are indexed once, by the first admin
   * operation after an upgrade: one SCAN of the session keys, then never again.
   */
  async indexOlderSessions(): Promise<number> {
    if ((await this.redis.exists(this.keys.sessionsIndexed)) === 1) return 0;
    const found = new Map<string, { session: SessionKeys; slates: string[] }>();
    // SCAN sees one node's keys: on a cluster, each master is scanned.
    for (const master of mastersOf(this.redis)) {
      let cursor = '0';
      do {
        const [next, keys] = await master.scan(cursor, 'MATCH', this.keys.sessionPattern, 'COUNT', 1000);
        cursor = next;
        for (const key of keys) {
          const parsed = parseSessionKey(this.keys.prefix, key);
          if (parsed === undefined || /^(lease:|flag:|index$)/.test(parsed.slate)) continue;
          const id = `${parsed.tenant}/${parsed.sessionId}`;
          const entry = found.get(id) ?? { session: this.keys.session(parsed.tenant, parsed.sessionId), slates: [] };
          entry.slates.push(parsed.slate);
          found.set(id, entry);
        }
      } while (cursor !== '0');
    }
    const entries = [...found.entries()];
    for (let start = 0; start < entries.length; start += BATCH) {
      const batch = entries.slice(start, start + BATCH);
      await this.redis.zadd(this.keys.sessionRegistry, ...batch.flatMap(([id]) => [Date.now(), id]));
      await pipelineEach(
        this.redis,
        batch,
        ([, { session }]) => session.base,
        (pipeline, [, { session, slates }]) => {
          pipeline.sadd(session.index, ...slates);
          // As long as the longest a slate is kept by default; each write extends it as needed.
          pipeline.pexpire(session.index, INDEX_TTL_MS, 'NX');
        },
      );
    }
    await this.redis.set(this.keys.sessionsIndexed, new Date().toISOString());
    return entries.length;
  }
}
