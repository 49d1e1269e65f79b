import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { EnvelopeError, envelopeKid, type KeyRing, type OpenFailure, open, parseKeyRing, seal } from '../src/index.js';

const oldEntry = `old:${randomBytes(32).toString('base64')}`;
const newEntry = `new:${randomBytes(32).toString('base64')}`;
const ring = parseKeyRing(newEntry);
const AD = 'cf:session:{default/s1}:cookies';
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** The reason `open` refused the envelope; fails the test when it opened. */
function failure(keys: KeyRing, associatedData: string, envelope: string): OpenFailure {
  try {
    open(keys, associatedData, envelope);
  } catch (error) {
    expect(error).toBeInstanceOf(EnvelopeError);
    return (error as EnvelopeError).reason;
  }
  throw new Error('expected open to refuse the envelope');
}

/** The envelope with one part replaced. */
function withPart(envelope: string, index: number, replace: (part: string) => string): string {
  const parts = envelope.split('.');
  parts[index] = replace(parts[index] as string);
  return parts.join('.');
}

/** Another base64url character in the position's most significant bits, so the decoded bytes change. */
function flipFirst(part: string): string {
  const first = part[0] as string;
  const other = BASE64URL[(BASE64URL.indexOf(first) + 32) % 64] as string;
  return other + part.slice(1);
}

describe('seal and open', () => {
  it.each([
    ['ASCII JSON', JSON.stringify({ cookies: [{ key: 'sid', value: 'abc' }] })],
    ['unicode', 'Grüße, 世界 🍪 — ñ\u0000\uFFFD'],
    ['the empty string', ''],
  ])('round-trips %s', (_what, text) => {
    expect(open(ring, AD, seal(ring, AD, text))).toBe(text);
  });

  it('round-trips 1 MiB', () => {
    const text = randomBytes(768 * 1024).toString('base64');
    expect(text).toHaveLength(1024 * 1024);
    expect(open(ring, AD, seal(ring, AD, text))).toBe(text);
  });

  it('seals the same text differently each time (random IV)', () => {
    const a = seal(ring, AD, 'same');
    const b = seal(ring, AD, 'same');
    expect(a).not.toBe(b);
    expect(a.split('.')[2]).not.toBe(b.split('.')[2]);
  });

  it('writes cf1.<kid>.<iv>.<ciphertext>.<tag> in base64url with a 12-byte IV and a 16-byte tag', () => {
    const envelope = seal(ring, AD, 'secret value');
    expect(envelope).toMatch(/^cf1\.new\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
    const [, , iv = '', body = '', tag = ''] = envelope.split('.');
    expect(Buffer.from(iv, 'base64url')).toHaveLength(12);
    expect(Buffer.from(body, 'base64url')).toHaveLength('secret value'.length);
    expect(Buffer.from(tag, 'base64url')).toHaveLength(16);
    expect(envelope).not.toContain('secret');
    expect(Buffer.from(body, 'base64url').toString('utf8')).not.toContain('secret');
  });

  it('names its key id, and envelopeKid says undefined for anything else', () => {
    expect(envelopeKid(seal(ring, AD, 'x'))).toBe('new');
    expect(envelopeKid('{"plain":"json"}')).toBeUndefined();
    expect(envelopeKid('cf2.new.a.b.c')).toBeUndefined();
    expect(envelopeKid('cf1.new.a.b')).toBeUndefined();
    expect(envelopeKid('')).toBeUndefined();
  });
});

describe('open refuses', () => {
  const envelope = seal(ring, AD, JSON.stringify({ token: 'bearer-123' }));

  it("a value copied under another session's key (other associated data): auth_failed", () => {
    expect(failure(ring, 'cf:session:{default/s2}:cookies', envelope)).toBe('auth_failed');
  });

  it('a value copied under another slate of the same session: auth_failed', () => {
    expect(failure(ring, 'cf:session:{default/s1}:auth', envelope)).toBe('auth_failed');
  });

  it.each([
    ['IV', 2],
    ['ciphertext', 3],
    ['tag', 4],
  ])('a flipped character in the %s', (_what, index) => {
    expect(['auth_failed', 'malformed']).toContain(failure(ring, AD, withPart(envelope, index, flipFirst)));
  });

  it('a flipped character in the last position of the ciphertext and of the tag', () => {
    for (const index of [3, 4]) {
      const flipped = withPart(envelope, index, (part) => {
        const last = part.at(-1) as string;
        return part.slice(0, -1) + (BASE64URL[(BASE64URL.indexOf(last) + 32) % 64] as string);
      });
      expect(['auth_failed', 'malformed']).toContain(failure(ring, AD, flipped));
    }
  });

  it('never opens a one-character change to a different plaintext, at any position', () => {
    const original = 'value';
    const sealed = seal(ring, AD, original);
    for (let i = 0; i < sealed.length; i++) {
      if (sealed[i] === '.') continue;
      for (const c of BASE64URL) {
        if (c === sealed[i]) continue;
        let opened: string | undefined;
        try {
          opened = open(ring, AD, sealed.slice(0, i) + c + sealed.slice(i + 1));
        } catch (error) {
          expect(error).toBeInstanceOf(EnvelopeError);
        }
        if (opened !== undefined) expect(opened).toBe(original);
      }
    }
  });

  // A stored value has one spelling: a variant spelling of the same bytes (changed unused trailing
  // bits, characters Node's base64url decoder skips) is tampering and must not open either.
  it('an envelope whose base64url is not canonical (changed unused bits, a stray character)', () => {
    const tag = envelope.split('.')[4] as string;
    const last = tag.at(-1) as string;
    // 16 bytes take 22 characters, the last of which carries 4 unused bits.
    const sameBytes = withPart(
      envelope,
      4,
      (part) => part.slice(0, -1) + (BASE64URL[BASE64URL.indexOf(last) ^ 1] as string),
    );
    expect(Buffer.from(sameBytes.split('.')[4] as string, 'base64url').equals(Buffer.from(tag, 'base64url'))).toBe(
      true,
    );
    expect(['auth_failed', 'malformed']).toContain(failure(ring, AD, sameBytes));
    const stray = withPart(envelope, 4, (part) => `${part.slice(0, 5)}!${part.slice(5)}`);
    expect(['auth_failed', 'malformed']).toContain(failure(ring, AD, stray));
  });

  it.each([
    ['cut inside the tag', (e: string) => e.slice(0, -3)],
    ['cut inside the ciphertext (tag kept)', (e: string) => withPart(e, 3, (p) => p.slice(0, -2))],
    ['with no tag', (e: string) => e.slice(0, e.lastIndexOf('.'))],
    ['with an empty tag', (e: string) => e.slice(0, e.lastIndexOf('.') + 1)],
    ['cut to the version and kid', (e: string) => e.split('.').slice(0, 2).join('.')],
    ['cut to nothing', () => ''],
  ])('a truncated envelope: %s', (_what, cut) => {
    expect(['auth_failed', 'malformed']).toContain(failure(ring, AD, cut(envelope)));
  });

  it('something that is not an envelope: malformed', () => {
    expect(failure(ring, AD, '{"token":"bearer-123"}')).toBe('malformed');
    expect(
      failure(
        ring,
        AD,
        withPart(envelope, 0, () => 'cf2'),
      ),
    ).toBe('malformed');
    expect(failure(ring, AD, `${envelope}.extra`)).toBe('malformed');
  });

  it('an IV or tag of the wrong length: malformed', () => {
    expect(
      failure(
        ring,
        AD,
        withPart(envelope, 2, (p) => p.slice(0, 12)),
      ),
    ).toBe('malformed');
    expect(
      failure(
        ring,
        AD,
        withPart(envelope, 4, (p) => `${p}AAAA`),
      ),
    ).toBe('malformed');
  });

  it('a key id the ring does not hold: unknown_key', () => {
    expect(
      failure(
        ring,
        AD,
        withPart(envelope, 1, () => 'gone'),
      ),
    ).toBe('unknown_key');
    expect(failure(parseKeyRing(oldEntry), AD, envelope)).toBe('unknown_key');
  });

  it('says why in its message and never repeats the payload', () => {
    try {
      open(ring, 'other', envelope);
      expect.unreachable();
    } catch (error) {
      expect((error as Error).name).toBe('EnvelopeError');
      expect((error as Error).message).toBe('slate envelope auth failed');
      expect((error as Error).message).not.toContain(envelope.split('.')[3]);
    }
  });
});

describe('key rotation', () => {
  const oldRing = parseKeyRing(oldEntry);
  const rotatedRing = parseKeyRing(`${newEntry},${oldEntry}`);
  const newOnlyRing = parseKeyRing(newEntry);
  const sealedWithOld = seal(oldRing, AD, 'kept across rotation');

  it('opens a value sealed with the old key with a ring [new, old], and the envelope still names the old kid', () => {
    expect(open(rotatedRing, AD, sealedWithOld)).toBe('kept across rotation');
    expect(envelopeKid(sealedWithOld)).toBe('old');
  });

  it('seals with the new key once it comes first', () => {
    const resealed = seal(rotatedRing, AD, open(rotatedRing, AD, sealedWithOld));
    expect(envelopeKid(resealed)).toBe('new');
    expect(open(newOnlyRing, AD, resealed)).toBe('kept across rotation');
  });

  it('cannot open the old value with a ring [new] alone', () => {
    expect(failure(newOnlyRing, AD, sealedWithOld)).toBe('unknown_key');
  });

  it('refuses a value sealed under another key that claims a kid the ring holds', () => {
    const impostor = withPart(sealedWithOld, 1, () => 'new');
    expect(failure(rotatedRing, AD, impostor)).toBe('auth_failed');
  });
});
