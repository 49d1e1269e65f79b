import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { redactPii, redactPiiDeep } from '../src/index.js';

/** Real-looking lines kept in the repository's `test/fixtures`: personal data, and look-alikes that must stay. */
interface PiiCorpus {
  readonly redact: readonly { readonly kind: string; readonly text: string; readonly redacted: string }[];
  readonly keep: readonly { readonly kind: string; readonly text: string }[];
}
const corpus: PiiCorpus = JSON.parse(
  readFileSync(new URL('../../../test/fixtures/pii-corpus.json', import.meta.url), 'utf8'),
);

describe('redactPii', () => {
  it.each([
    ['Write to alice@example.com today', 'Write to [email] today'],
    ['first.last+tag@mail.example.co.uk', '[email]'],
    ['call +1 415 555 0100.', 'call [phone].'],
    ['call (415) 555-0100 now', 'call [phone] now'],
    ['tel 020 7946 0958', 'tel [phone]'],
    ['<a href="tel:+14155550100">', '<a href="tel:[phone]">'],
    ['Last login from 203.0.113.7.', 'Last login from [ip].'],
    ['peer 2001:db8::1 and fe80:0:0:0:0:0:0:1', 'peer [ip] and [ip]'],
    ['WAF sec 203.0.113.7 blocked', 'WAF sec [ip] blocked'],
  ])('redacts %j', (input, expected) => {
    expect(redactPii(input)).toBe(expected);
  });

  it.each([
    'dated 2026-11-21 at 12:30:45',
    'order 12345 and order 123456789',
    'version v1.2.3, 10.0.0, 1.2.3.4.5',
    'price 1 299.00',
    'id 550e8400-e29b-41d4-a716-446655440000',
    'no personal data here',
  ])('leaves %j alone', (input) => {
    expect(redactPii(input)).toBe(input);
  });

  it('redacts every string in a nested value without changing the input', () => {
    const input = { user: 'bob@example.com', hops: ['10.1.2.3', 42], nested: { note: 'ok' } };
    expect(redactPiiDeep(input)).toEqual({ user: '[email]', hops: ['[ip]', 42], nested: { note: 'ok' } });
    expect(input.user).toBe('bob@example.com');
  });

  it(`redacts all ${corpus.redact.length} true positives of the corpus and none of its ${corpus.keep.length} look-alikes`, () => {
    // A true positive counts only when exactly its personal data is replaced; a look-alike counts when changed at all.
    const missed = corpus.redact.filter(({ text, redacted }) => redactPii(text) !== redacted);
    const overRedacted = corpus.keep.filter(({ text }) => redactPii(text) !== text);
    const found = corpus.redact.length - missed.length;
    const report = {
      recall: found / corpus.redact.length,
      precision: found / (found + overRedacted.length),
      missed: missed.map(({ text }) => `${text} -> ${redactPii(text)}`),
      overRedacted: overRedacted.map(({ text }) => `${text} -> ${redactPii(text)}`),
    };
    expect(report).toEqual({ recall: 1, precision: 1, missed: [], overRedacted: [] });
  });
});
