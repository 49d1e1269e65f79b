import { randomBytes } from 'node:crypto';
import { InputError } from '@crawlfleet/core';
import { describe, expect, it } from 'vitest';
import { generateKeyEntry, parseKeyRing } from '../src/index.js';

const keyA = randomBytes(32);
const keyB = randomBytes(32);
const keyC = randomBytes(32);

function entry(kid: string, key: Buffer): string {
  return `${kid}:${key.toString('base64')}`;
}

/** Runs `parse` and returns the InputError it threw, failing the test when it did not throw one. */
function refusal(parse: () => unknown): InputError {
  try {
    parse();
  } catch (error) {
    expect(error).toBeInstanceOf(InputError);
    return error as InputError;
  }
  throw new Error('expected parseKeyRing to throw');
}

describe('parseKeyRing', () => {
  it('accepts one kid:base64 entry and makes it the current key', () => {
    const ring = parseKeyRing(entry('k1', keyA));
    expect(ring.current.kid).toBe('k1');
    expect(ring.current.key.equals(keyA)).toBe(true);
    expect(ring.kids).toEqual(['k1']);
  });

  it('accepts several entries with whitespace and a trailing comma; the first is current, every kid is retrievable', () => {
    const ring = parseKeyRing(` ${entry('new', keyA)} ,\n  ${entry('old', keyB)},\t${entry('older_2-x', keyC)} , `);
    expect(ring.current.kid).toBe('new');
    expect(ring.kids).toEqual(['new', 'old', 'older_2-x']);
    expect(ring.get('new')?.key.equals(keyA)).toBe(true);
    expect(ring.get('old')?.key.equals(keyB)).toBe(true);
    expect(ring.get('older_2-x')?.key.equals(keyC)).toBe(true);
    expect(ring.get('missing')).toBeUndefined();
  });

  it('accepts base64url key material and a 32-character kid', () => {
    const kid = 'a'.repeat(32);
    const ring = parseKeyRing(`${kid}:${keyA.toString('base64url')}`);
    expect(ring.current.kid).toBe(kid);
    expect(ring.current.key.equals(keyA)).toBe(true);
  });

  const malformed: Array<[string, string]> = [
    ['an empty string', ''],
    ['only commas and spaces', ' , ,'],
    ['an entry without a colon', keyA.toString('base64')],
    ['an empty kid', `:${keyA.toString('base64')}`],
    ['a kid with a dot', entry('k.1', keyA)],
    ['a kid with a space', entry('k 1', keyA)],
    ['a kid of 33 characters', entry('a'.repeat(33), keyA)],
    ['a 31-byte key', entry('k1', randomBytes(31))],
    ['a 33-byte key', entry('k1', randomBytes(33))],
    ['an empty key', 'k1:'],
    ['key material that is not base64', `k1:${'!'.repeat(44)}`],
    [
      'key material with base64 padding in the middle',
      `k1:${keyA.toString('base64').slice(0, 20)}=${keyA.toString('base64').slice(20)}`,
    ],
    ['a kid that appears twice', `${entry('k1', keyA)},${entry('k1', keyB)}`],
    ['a bad second entry', `${entry('k1', keyA)},${entry('k2', randomBytes(16))}`],
  ];

  it.each(malformed)('refuses %s with invalid_keys, exit code 2, and no key material in the message', (_what, text) => {
    const error = refusal(() => parseKeyRing(text));
    expect(error.code).toBe('invalid_keys');
    expect(error.exitCode).toBe(2);
    expect(error.message).not.toBe('');
    for (const key of [keyA, keyB, keyC]) {
      expect(error.message).not.toContain(key.toString('base64'));
      expect(error.message).not.toContain(key.toString('base64').slice(0, 12));
    }
    const material = text.split(',').map((part) => part.slice(part.indexOf(':') + 1).trim());
    for (const m of material) if (m.length >= 8) expect(error.message).not.toContain(m);
  });

  it('names the source it was given in its messages', () => {
    const error = refusal(() => parseKeyRing('k1:short', '--keys'));
    expect(error.message).toContain('--keys');
    expect(error.message).not.toContain('short');
  });
});

describe('generateKeyEntry', () => {
  it('makes an entry that parses back into a 32-byte key', () => {
    const text = generateKeyEntry();
    const ring = parseKeyRing(text);
    expect(ring.current.key).toHaveLength(32);
    expect(text.startsWith(`${ring.current.kid}:`)).toBe(true);
  });

  it('makes unique kids and keys across 100 calls', () => {
    const entries = Array.from({ length: 100 }, () => generateKeyEntry());
    const kids = entries.map((e) => e.slice(0, e.indexOf(':')));
    const keys = entries.map((e) => e.slice(e.indexOf(':') + 1));
    expect(new Set(kids).size).toBe(100);
    expect(new Set(keys).size).toBe(100);
    expect(() => parseKeyRing(entries.join(','))).not.toThrow();
  });

  it("dates the kid with today's UTC date", () => {
    const today = new Date().toISOString().slice(0, 10).replace(/-/g, '');
    const kid = parseKeyRing(generateKeyEntry()).current.kid;
    expect(kid).toMatch(new RegExp(`^k${today}[0-9a-f]{6}$`));
  });

  it('dates the kid with the date it is given', () => {
    const kid = parseKeyRing(generateKeyEntry(new Date('2031-02-03T23:59:00Z'))).current.kid;
    expect(kid).toMatch(/^k20310203[0-9a-f]{6}$/);
  });
});
