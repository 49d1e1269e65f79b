import { randomBytes } from 'node:crypto';
import type { SinkEntry } from '@crawlfleet/sinks';
import { PostgresTarget } from '@crawlfleet/sinks/postgres';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { storedResult } from '../src/stored-result.js';

const POSTGRES = 'postgres://postgres@127.0.0.1:5432/test';

let db: pg.Client;
let table: string;
let target: PostgresTarget | undefined;

beforeAll(async () => {
  db = new pg.Client({ connectionString: POSTGRES });
  await db.connect();
});

afterAll(async () => {
  await db.end();
});

beforeEach(() => {
  table = `t_pg_${randomBytes(4).toString('hex')}`;
});

afterEach(async () => {
  await target?.close();
  target = undefined;
  await db.query(`DROP TABLE IF EXISTS "${table}"`);
});

function entries(tag: string, count: number, fetchedAt = '2026-11-30T10:00:00.000Z'): SinkEntry[] {
  return Array.from({ length: count }, (_, i) => {
    const result = storedResult(`ik-${tag}-${i}`, { fetchedAt, body: `page ${i} fetched ${fetchedAt}` });
    return { entryId: `${1_000 + i}-0`, result, body: Buffer.from(result.body) };
  });
}

describe('PostgresTarget', () => {
  it('creates the table and writes a batch written again only once', async () => {
    target = await PostgresTarget.open(`${POSTGRES}?table=${table}`);
    const batch = entries('a', 50);
    await target.write(batch);
    const first = await db.query(`SELECT idempotency_key, stored_at FROM "${table}" ORDER BY idempotency_key`);

    await target.write(batch);

    const again = await db.query(`SELECT idempotency_key, stored_at FROM "${table}" ORDER BY idempotency_key`);
    expect(again.rows).toHaveLength(50);
    expect(again.rows).toEqual(first.rows);
    const row = await db.query(`SELECT * FROM "${table}" WHERE idempotency_key = 'ik-a-3'`);
    expect(row.rows[0]).toMatchObject({
      url: batch[3]?.result.url,
      status: 200,
      body: 'page 3 fetched 2026-11-30T10:00:00.000Z',
      body_encoding: 'utf8',
      outbox_entry: '1003-0',
      headers: batch[3]?.result.headers,
    });
  });

  it('replaces a row only with a newer fetch of its key (a --force run)', async () => {
    target = await PostgresTarget.open(`${POSTGRES}?table=${table}`);
    await target.write(entries('f', 3, '2026-11-30T10:00:00.000Z'));
    await target.write(entries('f', 3, '2026-11-30T11:00:00.000Z'));
    await target.write(entries('f', 3, '2026-11-30T09:00:00.000Z'));

    const rows = await db.query(`SELECT body FROM "${table}" ORDER BY idempotency_key`);
    expect(rows.rows.map((r) => r.body)).toEqual([0, 1, 2].map((i) => `page ${i} fetched 2026-11-30T11:00:00.000Z`));
  });

  it('keeps a text body holding NUL as base64, which PostgreSQL text cannot hold', async () => {
    target = await PostgresTarget.open(`${POSTGRES}?table=${table}`);
    const result = storedResult('ik-nul', { body: 'a\u0000b' });
    await target.write([{ entryId: '1-0', result, body: Buffer.from(result.body) }]);

    const row = (await db.query(`SELECT body, body_encoding FROM "${table}"`)).rows[0];
    expect(row).toEqual({ body: Buffer.from('a\u0000b').toString('base64'), body_encoding: 'base64' });
  });

  it('opens for several sink processes starting at once on a table none has created yet', async () => {
    const opened = await Promise.all(
      Array.from({ length: 4 }, () => PostgresTarget.open(`${POSTGRES}?table=${table}`)),
    );
    await Promise.all(opened.map((each, i) => each.write(entries(`p${i}`, 5))));
    for (const each of opened) await each.close();
    expect(Number((await db.query(`SELECT count(*) AS n FROM "${table}"`)).rows[0]?.n)).toBe(20);
  });

  it('refuses a bad table name and a database that does not exist, in one line', async () => {
    await expect(PostgresTarget.open(`${POSTGRES}?table=a;drop`)).rejects.toMatchObject({ code: 'invalid_sink' });
    await expect(
      PostgresTarget.open(`postgres://postgres:secret@127.0.0.1:5432/no_such_db_${table}`),
    ).rejects.toMatchObject({
      code: 'invalid_sink',
      message: expect.stringMatching(/^postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:5432\/no_such_db.*does not exist/),
    });
  });
});
