import { afterEach, describe, expect, it } from 'vitest';
import { SessionBreakers } from '../src/index.js';

/** opossum counts a fire once its promise settles: let it. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('SessionBreakers', () => {
  let breakers: SessionBreakers | undefined;
  afterEach(() => breakers?.shutdown());

  function make(opened: string[], maxSessions = 100) {
    breakers = new SessionBreakers({ failureThreshold: 3, resetTimeoutMs: 60_000, maxSessions }, (key) =>
      opened.push(key),
    );
    return breakers;
  }

  async function record(b: SessionBreakers, key: string, outcomes: string) {
    for (const outcome of outcomes) {
      b.record(key, outcome === 'S');
      await settle();
    }
  }

  it('opens after failureThreshold consecutive failures, however many successes came before', async () => {
    const opened: string[] = [];
    const b = make(opened);
    await record(b, 't/a', 'SSSSSSSSSSFF');
    expect(opened).toEqual([]);
    await record(b, 't/a', 'F');
    expect(opened).toEqual(['t/a']);
  });

  it('does not open when a success breaks the run of failures', async () => {
    const opened: string[] = [];
    const b = make(opened);
    await record(b, 't/a', 'FFSFFSFFS');
    expect(opened).toEqual([]);
    expect(b.size).toBe(0);
  });

  it('keeps no breaker for a session that only succeeds, and counts sessions apart', async () => {
    const opened: string[] = [];
    const b = make(opened);
    await record(b, 't/ok', 'SSSS');
    expect(b.size).toBe(0);
    await record(b, 't/a', 'FF');
    await record(b, 't/b', 'FF');
    expect(b.size).toBe(2);
    await record(b, 't/b', 'F');
    expect(opened).toEqual(['t/b']);
  });

  it('keeps at most maxSessions breakers, dropping the least recently failing', async () => {
    const opened: string[] = [];
    const b = make(opened, 2);
    await record(b, 't/a', 'FF');
    await record(b, 't/b', 'FF');
    await record(b, 't/c', 'F');
    expect(b.size).toBe(2);
    // t/a was dropped with its two failures: one more is not three in a row for this worker.
    await record(b, 't/a', 'F');
    expect(opened).toEqual([]);
  });
});
