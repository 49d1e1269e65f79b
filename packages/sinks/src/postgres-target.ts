import { InputError } from '@crawlfleet/core';
import pg from 'pg';
import type { SinkItem, SinkTarget } from './sink-target.js';

export const DEFAULT_TABLE = 'crawlfleet_results';
export const DEFAULT_RECORDS_TABLE = 'crawlfleet_records';

/** The records table's columns, as the results table's. */
const RECORD_COLUMNS: ReadonlyArray<readonly [name: string, type: string]> = [
  ['id', 'text'],
  ['crawl', 'text'],
  ['url', 'text'],
  ['idempotency_key', 'text'],
  ['tenant', 'text'],
  ['data', 'jsonb'],
  ['pushed_at', 'timestamptz'],
  ['outbox_entry', 'text'],
];

/** `name` or `schema.name`, each a plain identifier (quoted when used). */
const TABLE_PATTERN = /^([A-Za-z_][A-Za-z0-9_]{0,62}\.)?[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** The columns, in the order every statement lists them, with their unnest array types. */
const COLUMNS: ReadonlyArray<readonly [name: string, type: string]> = [
  ['idempotency_key', 'text'],
  ['url', 'text'],
  ['final_url', 'text'],
  ['status', 'int4'],
  ['fetched_at', 'timestamptz'],
  ['headers', 'jsonb'],
  ['body', 'text'],
  ['body_encoding', 'text'],
  ['body_bytes', 'int8'],
  ['body_truncated', 'bool'],
  ['body_ref', 'text'],
  ['body_sha256', 'text'],
  ['tenant', 'text'],
  ['session_id', 'text'],
  ['job_id', 'text'],
  ['attempts', 'int4'],
  ['redirects', 'int4'],
  ['duration_ms', 'int4'],
  ['outbox_entry', 'text'],
  ['crawl', 'text'],
  ['depth', 'int4'],
];

/** The records table (what crawls' handlers push), created with the first record a sink writes. */
function recordsTableStatement(recordsTable: string): string {
  return `CREATE TABLE IF NOT EXISTS ${quoted(recordsTable)} (
          id text PRIMARY KEY,
          crawl text NOT NULL,
          url text NOT NULL,
          idempotency_key text NOT NULL,
          tenant text NOT NULL,
          data jsonb NOT NULL,
          pushed_at timestamptz NOT NULL,
          outbox_entry text NOT NULL,
          stored_at timestamptz NOT NULL DEFAULT now()
        )`;
}

/**
 * Creates a table when missing. Sink processes starting together all try; those that lose the
 * race (a duplicate type, table or object: 23505, 42P07, 42710) find the table there.
 */
async function createTable(pool: pg.Pool, statement: string): Promise<void> {
  try {
    await pool.query(statement);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code !== '23505' && code !== '42P07' && code !== '42710') throw error;
  }
}

function quoted(table: string): string {
  return table
    .split('.')
    .map((part) => `"${part}"`)
    .join('.');
}

/**
 * A PostgreSQL table keyed by `idempotency_key`: each batch is one upsert in one transaction, so
 * a batch written again (a sink killed after its commit and before its acknowledgement) changes
 * nothing: delivery into the table is exactly once. Only a newer fetch of the same key (a
 * `--force` run) replaces a row. The table is created when missing. The maintained `pg` client:
 * the reference driver, no ORM.
 */
export class PostgresTarget implements SinkTarget {
  readonly description: string;
  private readonly insert: string;
  private readonly insertRecords: string;
  private recordsReady: Promise<void> | undefined;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly table: string,
    private readonly recordsTableName: string,
    description: string,
  ) {
    this.description = description;
    // A record never changes: written again (a batch delivered twice), it is already there.
    const recordNames = RECORD_COLUMNS.map(([name]) => name).join(', ');
    const recordArrays = RECORD_COLUMNS.map(([, type], i) => `$${i + 1}::${type}[]`).join(', ');
    this.insertRecords = `INSERT INTO ${quoted(recordsTableName)} (${recordNames}) SELECT * FROM unnest(${recordArrays}) ON CONFLICT (id) DO NOTHING`;
    const names = COLUMNS.map(([name]) => name).join(', ');
    const arrays = COLUMNS.map(([, type], i) => `$${i + 1}::${type}[]`).join(', ');
    // A batch written again changes nothing (same fetched_at); a key crawled again on purpose
    // (`--force`) replaces its row with the newer fetch. One row per key either way.
    const updates = COLUMNS.filter(([name]) => name !== 'idempotency_key')
      .map(([name]) => `${name} = EXCLUDED.${name}`)
      .join(', ');
    this.insert = `INSERT INTO ${quoted(table)} AS t (${names}) SELECT * FROM unnest(${arrays}) ON CONFLICT (idempotency_key) DO UPDATE SET ${updates}, stored_at = now() WHERE EXCLUDED.fetched_at > t.fetched_at`;
  }

  /**
   * `postgres://user@host:port/db?table=name&records=name`; the tables are `crawlfleet_results`
   * and `crawlfleet_records` (what crawls' handlers push) by default.
   */
  static async open(uri: string): Promise<PostgresTarget> {
    let url: URL;
    try {
      url = new URL(uri);
    } catch {
      throw new InputError('invalid_sink', `--to ${redact(uri)}: not a postgres:// URI`);
    }
    const table = url.searchParams.get('table') ?? DEFAULT_TABLE;
    const recordsTable = url.searchParams.get('records') ?? DEFAULT_RECORDS_TABLE;
    const tables: Array<[option: string, name: string]> = [
      ['table', table],
      ['records', recordsTable],
    ];
    for (const [name, value] of tables)
      if (!TABLE_PATTERN.test(value))
        throw new InputError(
          'invalid_sink',
          `--to: ${name} must be a name or schema.name of A-Z a-z 0-9 _, got ${JSON.stringify(value)}`,
        );
    url.searchParams.delete('table');
    url.searchParams.delete('records');
    const description = redact(uri);
    const pool = new pg.Pool({ connectionString: url.href, max: 2 });
    // An idle client that loses its server is replaced at the next query; say nothing here.
    pool.on('error', () => undefined);
    try {
      await createTable(
        pool,
        `CREATE TABLE IF NOT EXISTS ${quoted(table)} (
          idempotency_key text PRIMARY KEY,
          url text NOT NULL,
          final_url text NOT NULL,
          status integer NOT NULL,
          fetched_at timestamptz NOT NULL,
          headers jsonb NOT NULL,
          body text,
          body_encoding text NOT NULL,
          body_bytes bigint NOT NULL,
          body_truncated boolean NOT NULL,
          body_ref text,
          body_sha256 text,
          tenant text NOT NULL,
          session_id text,
          job_id text NOT NULL,
          attempts integer NOT NULL,
          redirects integer NOT NULL,
          duration_ms integer NOT NULL,
          outbox_entry text NOT NULL,
          stored_at timestamptz NOT NULL DEFAULT now(),
          crawl text,
          depth integer
        )`,
      );
      // A table an older version made gets the named crawl's columns (a no-op once there).
      await pool.query(
        `ALTER TABLE ${quoted(table)} ADD COLUMN IF NOT EXISTS crawl text, ADD COLUMN IF NOT EXISTS depth integer`,
      );
    } catch (error) {
      const code = (error as { code?: string }).code;
      await pool.end().catch(() => undefined);
      // Refusals of the URI (no such database or role, bad password) are the user's to fix.
      if (code === '3D000' || code === '28000' || code === '28P01' || code === '42501')
        throw new InputError('invalid_sink', `${description}: ${(error as Error).message}`);
      throw new Error(`${description}: ${(error as Error).message}`);
    }
    return new PostgresTarget(pool, table, recordsTable, description);
  }

  /** Creates the records table once, when the first records come (a sink of no crawl never makes one). */
  private recordsTable(): Promise<void> {
    this.recordsReady ??= createTable(this.pool, recordsTableStatement(this.recordsTableName)).catch((error) => {
      this.recordsReady = undefined;
      throw error;
    });
    return this.recordsReady;
  }

  async write(entries: readonly SinkItem[]): Promise<void> {
    const columns: unknown[][] = COLUMNS.map(() => []);
    const recordColumns: unknown[][] = RECORD_COLUMNS.map(() => []);
    for (const { entryId, result, record } of entries) {
      if (record !== undefined) {
        const row = [
          record.id,
          record.crawl,
          record.url,
          record.idempotencyKey,
          record.tenant,
          JSON.stringify(record.data),
          record.pushedAt,
          entryId,
        ];
        for (const [i, value] of row.entries()) recordColumns[i]?.push(value);
        continue;
      }
      // PostgreSQL text cannot hold NUL: such a body is kept as base64, and says so.
      const nul = result.bodyEncoding === 'utf8' && result.body.includes('\u0000');
      const row = [
        result.idempotencyKey,
        result.url,
        result.finalUrl,
        result.status,
        result.fetchedAt,
        JSON.stringify(result.headers),
        nul ? Buffer.from(result.body, 'utf8').toString('base64') : result.body,
        nul ? 'base64' : result.bodyEncoding,
        result.bodyBytes,
        result.bodyTruncated,
        result.bodyRef ?? null,
        result.bodySha256 ?? null,
        result.tenant,
        result.sessionId,
        result.jobId,
        result.attempts,
        result.redirects,
        Math.round(result.durationMs),
        entryId,
        result.crawl ?? null,
        result.depth ?? null,
      ];
      for (const [i, value] of row.entries()) columns[i]?.push(value);
    }
    const records = (recordColumns[0]?.length ?? 0) > 0;
    // One statement is one transaction: the batch is in the table whole, or not at all.
    if (!records) {
      await this.pool.query(this.insert, columns);
      return;
    }
    await this.recordsTable();
    // Results and records of one batch: one transaction.
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      if ((columns[0]?.length ?? 0) > 0) await client.query(this.insert, columns);
      await client.query(this.insertRecords, recordColumns);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  /** Rows in the records table. */
  async countRecords(): Promise<number> {
    const answer = await this.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${quoted(this.recordsTableName)}`);
    return Number(answer.rows[0]?.n ?? 0);
  }

  /** Rows in the table (for tests and `--once` summaries). */
  async count(): Promise<number> {
    const answer = await this.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${quoted(this.table)}`);
    return Number(answer.rows[0]?.n ?? 0);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/** The URI without its password, for messages and logs. */
function redact(uri: string): string {
  return uri.replace(/(\/\/[^:/@]+:)[^@/]*@/, '$1***@');
}
