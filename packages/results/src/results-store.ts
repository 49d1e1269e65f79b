import { readFileSync } from 'node:fs';
import type { KeyLayout, RetentionConfig } from '@crawlfleet/core';
import type { Redis } from 'ioredis';
import type { StoredResult } from './stored-result.js';

const WRITE_RESULT = readFileSync(new URL('../lua/write-result.lua', import.meta.url), 'utf8');

type WithWriteResult = Redis & {
  cfWriteResult(
    ledgerKey: string,
    stream: string,
    json: string,
    ttl: number,
    maxLen: number,
  ): Promise<[number, string]>;
};

export interface WriteOutcome {
  /** False when the key was already finished and nothing was written. */
  written: boolean;
  /** The stream entry of this result, or of the earlier one. */
  entryId: string;
}

export interface ResultEntry {
  entryId: string;
  result: StoredResult;
}

/**
 * The results stream and the idempotency ledger. A result and its ledger mark are written by one
 * Lua script (`lua/write-result.lua`), so there is no moment where one exists without the other.
 */
export class ResultsStore {
  private readonly redis: WithWriteResult;

  constructor(
    redis: Redis,
    private readonly keys: KeyLayout,
    private readonly retention: Pick<RetentionConfig, 'resultsMaxLen' | 'ledgerTtlSeconds'>,
  ) {
    if (!('cfWriteResult' in redis)) redis.defineCommand('cfWriteResult', { numberOfKeys: 2, lua: WRITE_RESULT });
    this.redis = redis as WithWriteResult;
  }

  /** Writes the result unless its idempotency key is already finished. One round trip. */
  async write(result: StoredResult): Promise<WriteOutcome> {
    const [written, entryId] = await this.redis.cfWriteResult(
      this.keys.ledger(result.idempotencyKey),
      this.keys.results,
      JSON.stringify(result),
      this.retention.ledgerTtlSeconds,
      this.retention.resultsMaxLen,
    );
    return { written: written === 1, entryId };
  }

  async isFinished(idempotencyKey: string): Promise<boolean> {
    return (await this.redis.exists(this.keys.ledger(idempotencyKey))) === 1;
  }

  count(): Promise<number> {
    return this.redis.xlen(this.keys.results);
  }

  /** Every stored result, oldest first, read in pages so memory stays flat on any size. */
  async *entries(pageSize = 500): AsyncGenerator<ResultEntry> {
    let start = '-';
    for (;;) {
      const page = await this.redis.xrange(this.keys.results, start, '+', 'COUNT', pageSize);
      for (const [entryId, fields] of page) {
        const json = fields[1];
        if (json !== undefined) yield { entryId, result: JSON.parse(json) as StoredResult };
      }
      if (page.length < pageSize) return;
      start = `(${page[page.length - 1]?.[0]}`;
    }
  }
}
