import { describe, expect, it } from 'vitest';
import { type BackoffOptions, fullJitterDelay, parseRetryAfter, retryDelay } from '../src/index.js';

const OPTIONS: BackoffOptions = { baseMs: 100, maxMs: 10_000 };
const NOW = Date.parse('2025-01-01T00:00:00.000Z');
/** The largest double below 1, the most `Math.random` can return. */
const ALMOST_ONE = 1 - Number.EPSILON / 2;

/** The capped exponential bound that the jitter is drawn below. */
function bound(attempt: number, options: BackoffOptions = OPTIONS): number {
  return Math.min(options.maxMs, options.baseMs * 2 ** (attempt - 1));
}

describe('fullJitterDelay', () => {
  it.each([1, 2, 3, 5, 7, 8, 10, 20])('stays within [0, bound) on attempt %i for random 0, 0.5 and ~1', (attempt) => {
    for (const r of [0, 0.5, ALMOST_ONE]) {
      const delay = fullJitterDelay(attempt, OPTIONS, () => r);
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThan(bound(attempt));
      expect(Number.isInteger(delay)).toBe(true);
    }
  });

  it('returns 0 when random returns 0', () => {
    expect(fullJitterDelay(4, OPTIONS, () => 0)).toBe(0);
  });

  it('doubles the bound with each attempt', () => {
    const delays = [1, 2, 3, 4, 5].map((attempt) => fullJitterDelay(attempt, OPTIONS, () => 0.5));
    expect(delays).toEqual([50, 100, 200, 400, 800]);
  });

  it('reaches just below the bound when random is nearly 1', () => {
    expect(fullJitterDelay(1, OPTIONS, () => ALMOST_ONE)).toBe(99);
    expect(fullJitterDelay(3, OPTIONS, () => ALMOST_ONE)).toBe(399);
  });

  it('caps the bound at maxMs however many attempts were made', () => {
    for (const attempt of [8, 9, 20, 100, 1_000]) {
      expect(fullJitterDelay(attempt, OPTIONS, () => 0.5)).toBe(5_000);
      expect(fullJitterDelay(attempt, OPTIONS, () => ALMOST_ONE)).toBe(9_999);
    }
  });

  it('treats attempt 0 like the first retry', () => {
    expect(fullJitterDelay(0, OPTIONS, () => 0.5)).toBe(fullJitterDelay(1, OPTIONS, () => 0.5));
  });

  it('never exceeds the bound over 1000 draws of Math.random, and does not return a constant', () => {
    for (const attempt of [1, 4, 12]) {
      const seen = new Set<number>();
      for (let i = 0; i < 1000; i++) {
        const delay = fullJitterDelay(attempt, OPTIONS);
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThan(bound(attempt));
        seen.add(delay);
      }
      expect(seen.size).toBeGreaterThan(10);
    }
  });
});

describe('retryDelay', () => {
  it('is the full-jitter delay when the server asked for nothing', () => {
    expect(retryDelay(3, OPTIONS, undefined, () => 0.5)).toBe(200);
  });

  it.each([0, 1, 150, 399.2, 5_000, 60_000])('never waits less than a Retry-After of %d ms', (retryAfterMs) => {
    for (const r of [0, 0.5, ALMOST_ONE]) {
      for (const attempt of [1, 3, 10]) {
        const delay = retryDelay(attempt, OPTIONS, retryAfterMs, () => r);
        expect(delay).toBeGreaterThanOrEqual(retryAfterMs);
        expect(delay).toBeGreaterThanOrEqual(fullJitterDelay(attempt, OPTIONS, () => r));
      }
    }
  });

  it('keeps the jitter when it is longer than Retry-After', () => {
    expect(retryDelay(5, OPTIONS, 100, () => 0.5)).toBe(800);
  });

  it('waits a Retry-After longer than maxMs in full', () => {
    expect(retryDelay(1, OPTIONS, 120_000, () => ALMOST_ONE)).toBe(120_000);
  });

  it('rounds a fractional Retry-After up to a whole millisecond', () => {
    expect(retryDelay(1, OPTIONS, 1_500.2, () => 0)).toBe(1_501);
  });
});

describe('parseRetryAfter', () => {
  it.each<{ rule: string; value: string | undefined; expected: number | undefined }>([
    { rule: 'reads delta-seconds as milliseconds', value: '120', expected: 120_000 },
    { rule: 'reads 0 seconds as no wait', value: '0', expected: 0 },
    { rule: 'ignores surrounding whitespace', value: '  7 ', expected: 7_000 },
    { rule: 'reads an HTTP-date as the time from now', value: new Date(NOW + 30_000).toUTCString(), expected: 30_000 },
    { rule: 'reads an HTTP-date of now as no wait', value: new Date(NOW).toUTCString(), expected: 0 },
    { rule: 'reads an HTTP-date in the past as no wait', value: 'Wed, 21 Oct 2015 07:28:00 GMT', expected: 0 },
    { rule: 'reads garbage as unreadable', value: 'garbage', expected: undefined },
    { rule: 'reads "5 minutes" as unreadable', value: '5 minutes', expected: undefined },
    { rule: 'reads an empty header as unreadable', value: '', expected: undefined },
    { rule: 'reads an absent header as undefined', value: undefined, expected: undefined },
  ])('$rule', ({ value, expected }) => {
    expect(parseRetryAfter(value, NOW)).toBe(expected);
  });

  // RFC 9110 §10.2.3: Retry-After is an HTTP-date or delta-seconds (digits only). V8's Date.parse
  // accepts almost anything with a number in it, so these must not be taken for dates.
  it.each(['1.5', '-1', '+30', 'in 3', 'soon 2'])('reads the malformed value %j as unreadable', (value) => {
    expect(parseRetryAfter(value, NOW)).toBeUndefined();
  });
});
