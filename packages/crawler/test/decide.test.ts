import { describe, expect, it } from 'vitest';
import { decide } from '../src/decide.js';

const backoff = { baseMs: 1_000, maxMs: 60_000 };
/** The jitter at its top: the backoff's bound itself. */
const top = () => 0.999_999;

describe('decide', () => {
  it('retries a recoverable failure with attempts left, after a full-jitter backoff that grows per attempt', () => {
    const network = { failureClass: 'recoverable' as const, reason: 'timeout' };
    expect(decide(network, { attempt: 1, maxAttempts: 3, backoff, random: top })).toEqual({
      kind: 'retry',
      backoffMs: 999,
    });
    expect(decide(network, { attempt: 2, maxAttempts: 3, backoff, random: top })).toEqual({
      kind: 'retry',
      backoffMs: 1_999,
    });
    expect(decide(network, { attempt: 1, maxAttempts: 3, backoff, random: () => 0 })).toEqual({
      kind: 'retry',
      backoffMs: 0,
    });
  });

  it("never retries sooner than the server's Retry-After", () => {
    const limited = { failureClass: 'recoverable' as const, reason: 'http_429', status: 429, retryAfterMs: 30_000 };
    expect(decide(limited, { attempt: 1, maxAttempts: 5, backoff, random: top })).toEqual({
      kind: 'retry',
      backoffMs: 30_000,
    });
  });

  it('keeps the backoff under its maximum however many attempts came before', () => {
    const network = { failureClass: 'recoverable' as const, reason: 'connection_reset' };
    const decision = decide(network, { attempt: 30, maxAttempts: 40, backoff, random: top });
    expect(decision).toEqual({ kind: 'retry', backoffMs: 59_999 });
  });

  it('dead-letters a recoverable failure on its last attempt, marked retries_exhausted', () => {
    const server = { failureClass: 'recoverable' as const, reason: 'http_503', status: 503 };
    expect(decide(server, { attempt: 3, maxAttempts: 3, backoff })).toEqual({
      kind: 'dead_letter',
      classification: { failureClass: 'recoverable', reason: 'retries_exhausted:http_503', status: 503 },
    });
  });

  it('dead-letters a non-recoverable failure and a compliance block at once, as they are', () => {
    const gone = { failureClass: 'non_recoverable' as const, reason: 'http_404', status: 404 };
    const blocked = { failureClass: 'compliance_blocked' as const, reason: 'captcha', status: 403 };
    expect(decide(gone, { attempt: 1, maxAttempts: 5, backoff })).toEqual({
      kind: 'dead_letter',
      classification: gone,
    });
    expect(decide(blocked, { attempt: 1, maxAttempts: 5, backoff })).toEqual({
      kind: 'dead_letter',
      classification: blocked,
    });
  });

  it('dead-letters on the first attempt when the job may make only one', () => {
    const network = { failureClass: 'recoverable' as const, reason: 'timeout' };
    expect(decide(network, { attempt: 1, maxAttempts: 1, backoff })).toMatchObject({ kind: 'dead_letter' });
  });
});
