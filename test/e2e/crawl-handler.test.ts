import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SlateStore } from '@crawlfleet/slates';
import type { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { graphPrice } from '../src/fixture/link-graph.js';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { cleanupPrefix, keyLayout, openTestRedis, runCli, testRing, uniquePrefix } from '../src/harness.js';

const POSTGRES = 'postgres://postgres@127.0.0.1:5432/test';
const handlerFile = (name: string) => fileURLToPath(new URL(`../src/fixture/handlers/${name}`, import.meta.url));

describe("a named crawl's handler", () => {
  let site: FixtureSite;
  let redis: Redis;
  let dir: string;
  let env: Record<string, string>;
  const prefix = uniquePrefix('handler');
  const suffix = prefix.replace(/[^a-z0-9]/gi, '_').toLowerCase();
  const tables = { results: `results_${suffix}`, records: `records_${suffix}` };
  const db = new pg.Pool({ connectionString: POSTGRES, max: 1 });

  beforeAll(async () => {
    site = await startFixtureSite();
    redis = openTestRedis();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-handler-'));
    const config = join(dir, 'crawlfleet.config.json');
    writeFileSync(
      config,
      JSON.stringify({
        tenants: { default: { allowHosts: ['127.0.0.1'], robots: 'ignore' } },
        jobs: { retries: 1, backoffBaseMs: 20, backoffMaxMs: 50 },
      }),
    );
    env = { CRAWLFLEET_PREFIX: prefix, CRAWLFLEET_CONFIG: config };
  });
  afterAll(async () => {
    await cleanupPrefix(redis, prefix);
    redis.disconnect();
    await site.close();
    await db.query(`DROP TABLE IF EXISTS ${tables.results}, ${tables.records}`);
    await db.end();
    rmSync(dir, { recursive: true, force: true });
  });

  it('routes pages by label, gives them request, userData, $, enqueue, push and workflows, and fails them on a throw or a timeout', async () => {
    const to = `${POSTGRES}?table=${tables.results}&records=${tables.records}`;
    expect((await runCli(['sink', 'add', '--to', to, '--name', 'pg'], { env })).code).toBe(0);
    const onlySteps = `jsonl:${join(dir, 'only-steps')}`;
    expect((await runCli(['sink', 'add', '--to', onlySteps, '--name', 'only-steps'], { env })).code).toBe(0);
    // A page of no crawl, beside the crawl's: the crawl filters leave it out.
    expect((await runCli(['crawl', '--json', site.url('/ok/plain')], { env })).code).toBe(0);
    const out = join(dir, 'steps.jsonl');
    const crawled = await runCli(
      [
        'crawl',
        '--json',
        '--crawl',
        'steps',
        '--session',
        'walker',
        '--handler',
        handlerFile('steps.ts'),
        '--handler-timeout-ms',
        '300',
        '--out',
        out,
        site.url('/graph/'),
      ],
      { env },
    );
    expect(crawled.code, crawled.stderr).toBe(0);
    expect(JSON.parse(crawled.stdout)).toMatchObject({ crawl: 'steps', fetched: 2, dlq: 2, discovered: 4 });

    const lines = readFileSync(out, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line));
    const records = lines.filter((line) => line.kind === 'record');
    expect(
      lines
        .filter((line) => line.kind === undefined)
        .map((result) => new URL(result.url).pathname)
        .sort(),
    ).toEqual(['/graph/', '/graph/n/1']);
    expect(records.map((record) => record.data)).toEqual(
      expect.arrayContaining([
        { page: 'root', added: 1, title: 'graph root' },
        { page: 'detail', userData: { from: 'root', seen: 0 }, depth: 1 },
      ]),
    );
    expect(records).toHaveLength(2);
    for (const record of records) {
      expect(record).toMatchObject({ crawl: 'steps', tenant: 'default' });
      expect(record.id).toBe(`${record.idempotencyKey}:0`);
    }

    // The thrown error and the slow page are their own reasons; the stack is in the dead letter.
    const letters = JSON.parse((await runCli(['dlq', 'list', '--json'], { env })).stdout);
    const byPath = new Map(letters.map((letter: { url: string }) => [new URL(letter.url).pathname, letter]));
    expect(byPath.get('/graph/n/2')).toMatchObject({ reason: 'retries_exhausted:handler_error', attempts: 2 });
    expect(byPath.get('/graph/n/3')).toMatchObject({ reason: 'retries_exhausted:handler_timeout', attempts: 2 });
    const broken = byPath.get('/graph/n/2') as { id: string };
    const shown = JSON.parse((await runCli(['dlq', 'show', broken.id], { env })).stdout);
    expect(shown.message).toContain('the broken handler threw on purpose');
    expect(shown.message).toMatch(/steps\.ts:\d+/);

    // The root page moved the session's workflow on once.
    const store = new SlateStore(redis, keyLayout(prefix), testRing());
    const slates = await store.read(store.session('default', 'walker'), ['workflow:steps']);
    expect(slates.get('workflow:steps')?.value).toBe(1);

    // The outbox holds them for the registered sink: export shows the crawl's results and records.
    const exported = (await runCli(['results', 'export', '--crawl', 'steps'], { env })).stdout
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line));
    expect(exported).toHaveLength(4);
    expect(exported.every((line) => line.crawl === 'steps')).toBe(true);
    expect((await runCli(['results', 'export', '--crawl', 'other'], { env })).stdout).toBe('');

    // The registered PostgreSQL sink gets the results in one table and the records in the other.
    const sunk = await runCli(['sink', 'run', '--to', to, '--name', 'pg', '--once'], { env });
    expect(sunk.code, sunk.stderr).toBe(0);
    const rows = await db.query(`SELECT crawl, data FROM ${tables.records} ORDER BY id`);
    expect(rows.rows).toHaveLength(2);
    expect(rows.rows.map((row) => row.crawl)).toEqual(['steps', 'steps']);
    expect((await db.query(`SELECT count(*)::int AS n FROM ${tables.results}`)).rows[0].n).toBe(3);
    // Results name their crawl and depth; the plain page names none.
    const pages = await db.query(`SELECT url, crawl, depth FROM ${tables.results} ORDER BY url`);
    expect(pages.rows.map((row) => [new URL(row.url).pathname, row.crawl, row.depth])).toEqual([
      ['/graph/', 'steps', 0],
      ['/graph/n/1', 'steps', 1],
      ['/ok/plain', null, null],
    ]);

    // A sink of one crawl writes its pages and records only.
    const filtered = await runCli(
      ['sink', 'run', '--to', onlySteps, '--name', 'only-steps', '--crawl', 'steps', '--once'],
      {
        env,
      },
    );
    expect(filtered.code, filtered.stderr).toBe(0);
    const written = readdirSync(join(dir, 'only-steps'))
      .flatMap((file) => readFileSync(join(dir, 'only-steps', file), 'utf8').split('\n'))
      .filter(Boolean)
      .map((line) => JSON.parse(line));
    expect(written).toHaveLength(4);
    expect(written.every((line) => line.crawl === 'steps')).toBe(true);

    // dlq list names the crawl of each page, and keeps one crawl's.
    const stepsLetters = JSON.parse((await runCli(['dlq', 'list', '--crawl', 'steps', '--json'], { env })).stdout);
    expect(stepsLetters.map((letter: { crawl: string }) => letter.crawl)).toEqual(['steps', 'steps']);
    expect(JSON.parse((await runCli(['dlq', 'list', '--crawl', 'other', '--json'], { env })).stdout)).toEqual([]);
    expect(JSON.parse((await runCli(['crawls', 'show', 'steps', '--json'], { env })).stdout)).toMatchObject({
      stored: 2,
      deadLettered: 2,
      records: 2,
    });
  });

  it("runs the shipped example, which pushes the fixture's titles and prices", async () => {
    const example = fileURLToPath(new URL('../../examples/handlers/titles-and-prices.mjs', import.meta.url));
    const out = join(dir, 'example.jsonl');
    const crawled = await runCli(
      [
        'crawl',
        '--json',
        '--crawl',
        'example',
        '--handler',
        example,
        '--max-depth',
        '1',
        '--out',
        out,
        site.url('/graph/'),
      ],
      { env },
    );
    expect(crawled.code, crawled.stderr).toBe(0);
    const records = readFileSync(out, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line))
      .filter((line) => line.kind === 'record')
      .map((record) => record.data);
    // The root lists three products, labelled by the handler; each gives its title and price.
    expect(records).toEqual(
      expect.arrayContaining([
        { kind: 'listing', url: site.url('/graph/'), title: 'graph root', products: 3 },
        ...[1, 2, 3].map((n) => ({
          kind: 'product',
          url: site.url(`/graph/n/${n}`),
          title: `node ${n}`,
          price: Number(graphPrice(String(n))),
          listedOn: site.url('/graph/'),
        })),
      ]),
    );
    expect(records).toHaveLength(4);
  });

  it('keeps a worker from starting on a handler that does not load, with one line', async () => {
    const empty = join(dir, 'empty.mjs');
    writeFileSync(empty, 'export const nothing = 1;\n');
    const broken = join(dir, 'broken.mjs');
    writeFileSync(broken, 'export default function (\n');
    for (const [file, words] of [
      [join(dir, 'missing.mjs'), 'no such file'],
      [empty, 'exports no handler'],
      [broken, 'does not load'],
    ]) {
      const started = await runCli(['worker', '--handler', file as string], { env });
      expect(started.code, started.stderr).toBe(2);
      const lines = started.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(words);
    }
  });
});
