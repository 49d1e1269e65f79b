import { randomBytes } from 'node:crypto';
import { InputError } from '@crawlfleet/core';

/** One encryption key of the ring. */
export interface RingKey {
  /** The key id written into every envelope it seals. */
  readonly kid: string;
  readonly key: Buffer;
}

/**
 * The keys that seal and open slates. The first key seals; every key opens, so a new key can be
 * put first on every worker, `crawlfleet keys rotate` re-seals old slates, and only then the old
 * key is dropped, with no downtime.
 */
export class KeyRing {
  readonly current: RingKey;
  private readonly byId: ReadonlyMap<string, RingKey>;

  constructor(keys: readonly RingKey[]) {
    const [first] = keys;
    if (first === undefined) throw new InputError('invalid_keys', 'CRAWLFLEET_KEYS holds no key');
    this.current = first;
    this.byId = new Map(keys.map((k) => [k.kid, k]));
  }

  get(kid: string): RingKey | undefined {
    return this.byId.get(kid);
  }

  get kids(): string[] {
    return [...this.byId.keys()];
  }
}

const KID = /^[A-Za-z0-9_-]{1,32}$/;

/**
 * Parses `CRAWLFLEET_KEYS`: comma-separated `kid:base64key` entries, each key 32 bytes. The
 * message never repeats key material.
 */
export function parseKeyRing(text: string, source = 'CRAWLFLEET_KEYS'): KeyRing {
  const entries = text
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  const keys = entries.map((entry, index) => {
    const colon = entry.indexOf(':');
    const kid = colon === -1 ? '' : entry.slice(0, colon);
    if (!KID.test(kid)) {
      throw new InputError(
        'invalid_keys',
        `${source} entry ${index + 1}: expected kid:base64key with a kid of 1-32 of A-Z a-z 0-9 _ -`,
      );
    }
    const material = entry.slice(colon + 1);
    const key = Buffer.from(material, 'base64');
    if (key.length !== 32 || !/^[A-Za-z0-9+/_-]+={0,2}$/.test(material)) {
      throw new InputError(
        'invalid_keys',
        `${source} key ${kid}: must be 32 bytes in base64 (crawlfleet keys generate makes one)`,
      );
    }
    return { kid, key };
  });
  if (keys.length === 0)
    throw new InputError('invalid_keys', `${source} holds no key (crawlfleet keys generate makes one)`);
  const seen = new Set<string>();
  for (const { kid } of keys) {
    if (seen.has(kid)) throw new InputError('invalid_keys', `${source}: key id ${kid} appears twice`);
    seen.add(kid);
  }
  return new KeyRing(keys);
}

/** A new `kid:base64key` entry: a dated, random key id and 32 random bytes. */
export function generateKeyEntry(now: Date = new Date()): string {
  const date = now.toISOString().slice(0, 10).replace(/-/g, '');
  return `k${date}${randomBytes(3).toString('hex')}:${randomBytes(32).toString('base64')}`;
}
