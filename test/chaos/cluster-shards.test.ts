import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectRedis, keyLayout, type RedisClient, slotOf } from '@crawlfleet/core';
import { freePort } from '@crawlfleet/local-redis';
import type { Cluster } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliProcess, startCliProcess } from '../src/cli-process.js';
import { graphPagesWithin } from '../src/fixture/link-graph.js';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { runCli, TEST_KEYS, waitFor } from '../src/harness.js';
import { startWorkerProcess, type WorkerProcess } from '../src/processes.js';
import { type ClusterNode, type RedisCluster, startRedisCluster } from '../src/redis-cluster.js';

const PAGES = 3_000;
const SHARDS = 3;
const CONCURRENCY = 16;
const POSTGRES = 'postgres://postgres@127.0.0.1:5432/test';
/** Pages per session in the failover run. */
const SESSION_PAGES = 40;

/**
 * A fleet of 3 shards on a real Redis Cluster of 3 masters and 3 replicas: the producer, two
 * worker processes and a PostgreSQL sink, all through the CLI with `REDIS_URL=redis+cluster://`.
 * Every master carries one shard's queue, outbox and ledger; every page ends with one row. Then the
 * same crawl with one master killed (SIGKILL) part-way: its replica takes over, the processes
 * reconnect by themselves, and still every page has one row. A page fetched twice can only be one
 * of the killed master's shard (its completion did not reach the replica, so the job ran again).
 */
describe('a fleet of 3 shards on a 3-master Redis Cluster', () => {
  let cluster: RedisCluster;
  let redis: RedisClient;
  let site: FixtureSite;
  let db: pg.Client;
  let dir: string;
  const tables: string[] = [];
  let workers: WorkerProcess[] = [];
  let sink: CliProcess | undefined;

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicas: 1 });
    redis = await connectRedis(cluster.url, { role: 'worker' });
    site = await startFixtureSite();
    db = new pg.Client({ connectionString: POSTGRES });
    await db.connect();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-cluster-shards-'));
  }, 90_000);

  afterAll(async () => {
    sink?.child.kill('SIGKILL');
    await Promise.all(workers.map((worker) => worker.stop('SIGKILL')));
    for (const table of tables) await db?.query(`DROP TABLE IF EXISTS "${table}"`);
    await db?.end();
    redis?.disconnect();
    await cluster?.stop();
    await site?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /** The master serving a key's slot now (host:port). */
  const ownerOf = (key: string): string => {
    const owners = (redis as Cluster).slots[slotOf(key)];
    if (owners?.[0] === undefined) throw new Error(`no master serves ${key}`);
    return owners[0];
  };

  /** Calls each master has served, by address. */
  async function callsByMaster(): Promise<Map<string, number>> {
    const calls = new Map<string, number>();
    for (const master of (redis as Cluster).nodes('master')) {
      const stats = String(await master.info('commandstats'));
      let total = 0;
      for (const match of stats.matchAll(/calls=(\d+)/g)) total += Number(match[1]);
      calls.set(`${master.options.host}:${master.options.port}`, total);
    }
    return calls;
  }

  /** A fleet of SHARDS shards on the cluster under `prefix`: its config file and the environment of its processes. */
  function fleetEnv(prefix: string): Record<string, string> {
    const config = join(dir, `${prefix}.json`);
    writeFileSync(
      config,
      JSON.stringify({
        tenants: { default: { allowHosts: ['127.0.0.1'], robots: 'ignore', hostDelayMs: 0 } },
        queue: { shards: SHARDS },
      }),
    );
    return {
      REDIS_URL: cluster.url,
      CRAWLFLEET_SESSION_REDIS_URL: '',
      CRAWLFLEET_CONFIG: config,
      CRAWLFLEET_PREFIX: prefix,
      CRAWLFLEET_KEYS: TEST_KEYS,
      CRAWLFLEET_LOG_LEVEL: 'warn',
    };
  }

  interface Run {
    prefix: string;
    env: Record<string, string>;
    /** Pages submitted, sessions' pages included. */
    pages: number;
    rows(): Promise<{ count: number; keys: number }>;
    /** Each page's fetches, as the site counted them. */
    fetches(): number[];
  }

  /**
   * Submits PAGES pages to a fresh prefix, then starts two workers and a PostgreSQL sink. With
   * `sessions`, each of those sessions also gets SESSION_PAGES pages, each setting a cookie of its
   * own: half submitted before the plain pages, half after them.
   */
  async function start(
    label: string,
    sessions: readonly string[] = [],
    prefix = `${label}-${randomBytes(3).toString('hex')}`,
  ): Promise<Run> {
    const table = `t_cluster_${randomBytes(4).toString('hex')}`;
    tables.push(table);
    const env = fleetEnv(prefix);
    const paths = Array.from({ length: PAGES }, (_, i) => `/ok/${prefix}-${i}`);
    const file = join(dir, `${prefix}.txt`);
    writeFileSync(file, paths.map((path) => site.url(path)).join('\n'));
    const submitSessions = async (half: string) => {
      for (const session of sessions) {
        const urls = Array.from({ length: SESSION_PAGES / 2 }, (_, i) =>
          site.url(`/cookies/set?${session}-${half}${i}=1&${prefix}=${half}${i}`),
        );
        const submittedSession = await runCli(['submit', '--session', session, '--json', ...urls], { env });
        expect(submittedSession.code, submittedSession.stderr).toBe(0);
      }
    };
    await submitSessions('a');
    const submitted = await runCli(['submit', '--file', file, '--json'], { env });
    expect(submitted.code, submitted.stderr).toBe(0);
    expect(JSON.parse(submitted.stdout)).toEqual({ enqueued: PAGES, duplicates: 0 });
    await submitSessions('b');
    workers = [0, 1].map(() => startWorkerProcess(env, ['--concurrency', String(CONCURRENCY)]));
    sink = startCliProcess(['sink', 'run', '--to', `${POSTGRES}?table=${table}`, '--name', 'pg'], env);
    return {
      prefix,
      env,
      pages: PAGES + sessions.length * SESSION_PAGES,
      async rows() {
        const exists = await db.query('SELECT to_regclass($1) AS t', [table]);
        if (exists.rows[0]?.t === null) return { count: 0, keys: 0 };
        const answer = await db.query(`SELECT count(*) AS n, count(DISTINCT idempotency_key) AS k FROM "${table}"`);
        return { count: Number(answer.rows[0]?.n), keys: Number(answer.rows[0]?.k) };
      },
      fetches: () => paths.map((path) => site.hits(path)),
    };
  }

  /** Waits for every row, stops the processes, and checks the fleet ended clean. */
  async function finish(run: Run): Promise<void> {
    try {
      await waitFor(async () => (await run.rows()).count >= run.pages, {
        timeoutMs: 120_000,
        intervalMs: 500,
        what: `${run.pages} rows in PostgreSQL`,
      });
    } catch (error) {
      // What each part was doing, for whoever reads the failure.
      const status = await runCli(['status', '--json'], { env: run.env });
      process.stdout.write(
        `rows ${JSON.stringify(await run.rows())}\nstatus ${status.stdout}${status.stderr}\nsink ${sink?.stderr().slice(-3000)}\n${workers.map((worker, i) => `worker ${i}: ${worker.output().slice(-3000)}`).join('\n')}\n`,
      );
      throw error;
    }
    const status = JSON.parse((await runCli(['status', '--json'], { env: run.env })).stdout);
    expect(status.counts).toMatchObject({ waiting: 0, active: 0, delayed: 0, dlq: 0 });
    expect(status.shards).toHaveLength(SHARDS);
    sink?.child.kill('SIGTERM');
    expect(await sink?.exited).toBe(0);
    await Promise.all(workers.map((worker) => worker.stop('SIGTERM')));
    expect(await run.rows()).toEqual({ count: run.pages, keys: run.pages });
    expect(run.fetches().every((fetches) => fetches >= 1)).toBe(true);
  }

  it('spreads 3,000 pages over every master and stores each exactly once', async () => {
    const before = await callsByMaster();
    const run = await start('shards');
    const keys = keyLayout(run.prefix, SHARDS);
    // One shard on each master: the shard tags hash into the three masters' slot ranges.
    const owners = keys.shards.map((shard) => ownerOf(shard.tag));
    expect(new Set(owners).size).toBe(3);
    await finish(run);
    for (const shard of keys.shards) expect(await redis.exists(`${shard.tag}:crawl:meta`)).toBe(1);
    const after = await callsByMaster();
    for (const [master, calls] of after) expect(calls - (before.get(master) ?? 0)).toBeGreaterThan(PAGES / SHARDS);
    const twice = run.fetches().filter((fetches) => fetches > 1).length;
    expect(twice).toBe(0);
  }, 300_000);

  it('finishes the crawl by itself when a master dies part-way, with every page stored once, sessions in use on it too', async () => {
    // Sessions whose keys are on each master, the one about to die among them (keys of its own tag per session).
    const prefix = `failover-${randomBytes(3).toString('hex')}`;
    const victimAddress = ownerOf(keyLayout(prefix, SHARDS).shards[1]?.tag ?? '');
    const sessions: string[] = [];
    for (let i = 0; sessions.length < 6 && i < 1_000; i++) {
      const owner = ownerOf(keyLayout(prefix).session('default', `s${i}`).base);
      const onVictim = sessions.filter(
        (session) => ownerOf(keyLayout(prefix).session('default', session).base) === victimAddress,
      );
      if (owner === victimAddress ? onVictim.length < 2 : sessions.length - onVictim.length < 4) sessions.push(`s${i}`);
    }
    const onDeadMaster = new Set(
      sessions.filter((session) => ownerOf(keyLayout(prefix).session('default', session).base) === victimAddress),
    );
    expect(onDeadMaster.size).toBe(2);
    const run = await start('failover', sessions, prefix);
    const keys = keyLayout(run.prefix, SHARDS);
    await waitFor(async () => (await run.rows()).count >= PAGES / 4, {
      timeoutMs: 120_000,
      what: 'the crawl under way',
    });
    const victimShard = keys.shards[1];
    if (victimShard === undefined) throw new Error('no shard 1');
    const address = ownerOf(victimShard.tag);
    expect(address).toBe(victimAddress);
    const victim = cluster.nodes.find((node) => `127.0.0.1:${node.port}` === address) as ClusterNode;
    expect(victim).toBeDefined();
    await cluster.kill(victim);
    await cluster.recovered(30_000);
    expect(await victim.role()).toBe('down');
    await finish(run);
    // What ran twice: pages whose shard lived on the dead master, and no others.
    const twice = run.fetches().flatMap((count, i) => (count > 1 ? [`/ok/${run.prefix}-${i}`] : []));
    process.stdout.write(
      `failover: ${twice.length} of ${PAGES} pages fetched twice (the dead master's shard, ${victimShard.tag})\n`,
    );
    for (const shard of await pageShards(run, twice)) expect(shard).toBe(victimShard.index);
    // At most what the two workers held of that shard when it died, taken again.
    expect(twice.length).toBeLessThanOrEqual(2 * CONCURRENCY);
    // Every session still opens, two of them on the promoted replica; a session of the dead master
    // may have lost the cookies its last commits wrote (asynchronous replication), no other one.
    // While the dead master's slots had no master (the node timeout, then the promotion), a job of
    // one of its sessions ran on an ephemeral session or could not commit (the session store fails
    // fast by design: the fetch is not held up), and the last commits the master acknowledged may
    // not have reached its replica. Those are the only cookies a session may lose.
    const logged = workers.map((worker) => worker.output()).join('\n');
    const unsaved =
      (logged.match(/this job runs on an ephemeral session/g)?.length ?? 0) +
      (logged.match(/session commit failed/g)?.length ?? 0);
    let lost = 0;
    for (const session of sessions) {
      const shown = await runCli(['sessions', 'show', session, '--json'], { env: run.env });
      expect(shown.code, shown.stderr).toBe(0);
      const cookies = (JSON.parse(shown.stdout) as { cookies: Array<{ name: string }> }).cookies.filter((cookie) =>
        cookie.name.startsWith(`${session}-`),
      );
      if (onDeadMaster.has(session)) {
        expect(cookies.length).toBeGreaterThan(0);
        lost += SESSION_PAGES - cookies.length;
      } else expect(cookies, session).toHaveLength(SESSION_PAGES);
    }
    process.stdout.write(
      `failover: the dead master's 2 sessions lost ${lost} of ${2 * SESSION_PAGES} cookies; ${unsaved} jobs ran on an ephemeral session or could not commit\n`,
    );
    expect(lost).toBeLessThanOrEqual(unsaved + 2 * CONCURRENCY);
  }, 300_000);

  it('keeps every dead letter and result when the master of the fleet tag (DLQ, audit, registries) dies mid-crawl', async () => {
    // A prefix whose fleet tag lives on a master that still has a replica (an earlier test killed one).
    const replicated = new Set<string>();
    for (const master of (redis as Cluster).nodes('master'))
      if (/connected_slaves:[1-9]/.test(String(await master.info('replication'))))
        replicated.add(`${master.options.host}:${master.options.port}`);
    let prefix = '';
    for (let i = 0; prefix === '' || !replicated.has(ownerOf(`{${prefix}}`)); i++)
      prefix = `fleet-${randomBytes(3).toString('hex')}-${i}`;
    const env = fleetEnv(prefix);
    const half = 400;
    const file = join(dir, `${prefix}.txt`);
    const urls = Array.from({ length: half }, (_, i) => [
      site.url(`/ok/${prefix}-${i}`),
      site.url(`/status/404?${prefix}-${i}`),
    ]).flat();
    writeFileSync(file, urls.join('\n'));
    const submitted = await runCli(['submit', '--file', file, '--json'], { env });
    expect(JSON.parse(submitted.stdout)).toEqual({ enqueued: 2 * half, duplicates: 0 });
    workers = [startWorkerProcess(env, ['--concurrency', String(CONCURRENCY)])];
    const dlqCount = async () => {
      const status = await runCli(['status', '--json'], { env });
      return status.code === 0 ? (JSON.parse(status.stdout) as { counts: { dlq: number } }).counts.dlq : -1;
    };
    await waitFor(async () => (await dlqCount()) >= half / 4, { timeoutMs: 60_000, what: 'dead letters under way' });
    const address = ownerOf(`{${prefix}}`);
    const victim = cluster.nodes.find((node) => `127.0.0.1:${node.port}` === address) as ClusterNode;
    await cluster.kill(victim);
    await cluster.recovered(30_000);
    await waitFor(
      async () => {
        const status = await runCli(['status', '--json'], { env });
        if (status.code !== 0) return false;
        const { counts } = JSON.parse(status.stdout) as {
          counts: { waiting: number; active: number; delayed: number; dlq: number };
        };
        return counts.waiting + counts.active + counts.delayed === 0 && counts.dlq >= half;
      },
      { timeoutMs: 120_000, intervalMs: 500, what: 'every job finished after the failover' },
    );
    await workers[0]?.stop('SIGTERM');
    // Every 404 has its dead letter, once; every other page its result, once.
    const letters = JSON.parse((await runCli(['dlq', 'list', '--json', '--limit', '1000'], { env })).stdout) as Array<{
      url: string;
      reason: string;
    }>;
    expect(letters).toHaveLength(half);
    expect(new Set(letters.map((letter) => letter.url)).size).toBe(half);
    expect(letters.every((letter) => letter.reason === 'http_404')).toBe(true);
    const exported = (await runCli(['results', 'export'], { env })).stdout.trim().split('\n');
    expect(new Set(exported.map((line) => JSON.parse(line).idempotencyKey)).size).toBe(half);
  }, 240_000);

  it('runs the whole CLI against the cluster: submit, status, dlq, sessions, keys rotate, results export, board', async () => {
    const prefix = `cli-${randomBytes(3).toString('hex')}`;
    const env: Record<string, string | undefined> = fleetEnv(prefix);
    const cli = async (args: string[], extra: Record<string, string | undefined> = {}) => {
      const result = await runCli(args, { env: { ...env, ...extra } });
      expect(result.code, `crawlfleet ${args.join(' ')}: ${result.stderr}`).toBe(0);
      return result;
    };
    const json = async <T>(args: string[], extra: Record<string, string | undefined> = {}) =>
      JSON.parse((await cli([...args, '--json'], extra)).stdout) as T;

    // Six sessions, each with a cookie, spread over the masters by their own hash tags; and a 404.
    const sessions = Array.from({ length: 6 }, (_, i) => `s${i}`);
    for (const session of sessions)
      expect(await json(['submit', '--session', session, site.url(`/cookies/set?${prefix}=${session}`)])).toEqual({
        enqueued: 1,
        duplicates: 0,
      });
    const pages = Array.from({ length: 30 }, (_, i) => site.url(`/ok/${prefix}-${i}`));
    expect(await json(['submit', ...pages, site.url(`/status/404?${prefix}`)])).toEqual({
      enqueued: 31,
      duplicates: 0,
    });
    workers = [startWorkerProcess(env as Record<string, string>, ['--concurrency', '8'])];
    await waitFor(
      async () => {
        const status = await json<{ counts: { waiting: number; active: number; delayed: number; dlq: number } }>([
          'status',
        ]);
        return status.counts.dlq === 1 && status.counts.waiting + status.counts.active + status.counts.delayed === 0;
      },
      { timeoutMs: 60_000, what: 'every job finished' },
    );
    // Another shard count than the fleet's is refused; nothing is enqueued.
    const oneShard = join(dir, `${prefix}-one-shard.json`);
    writeFileSync(oneShard, JSON.stringify({ tenants: { default: { allowHosts: ['127.0.0.1'] } } }));
    const differs = await runCli(['submit', site.url('/ok/other')], { env: { ...env, CRAWLFLEET_CONFIG: oneShard } });
    expect(differs.code).toBe(2);
    expect(differs.stderr.trim()).toBe(
      `crawlfleet: the fleet under prefix ${prefix} runs 3 shards and this config has queue.shards 1: set it to 3 (changing it is a migration: docs/redis-cluster.md)`,
    );
    // Hydrate tracking needs a subscriber per master: on a cluster the worker turns it off, saying so once.
    expect(workers[0]?.output().match(/hydrate tracking \(CLIENT TRACKING\) is off/g)).toHaveLength(1);
    const status = await json<{ results: number; shards: Array<{ tag: string; results: number }> }>(['status']);
    expect(status.results).toBe(36);
    expect(status.shards.map((shard) => shard.tag)).toEqual(keyLayout(prefix, SHARDS).shards.map((shard) => shard.tag));
    expect(status.shards.every((shard) => shard.results > 0)).toBe(true);

    // The DLQ: listed, replayed onto its shard's queue, and filed again (the page is still a 404).
    const letters = await json<Array<{ id: string; reason: string }>>(['dlq', 'list']);
    expect(letters).toEqual([expect.objectContaining({ reason: 'http_404' })]);
    const replayed = await json<{ replayed: string[] }>(['dlq', 'replay', '--all']);
    expect(replayed.replayed).toEqual([letters[0]?.id]);
    await waitFor(async () => (await json<Array<{ id: string }>>(['dlq', 'list'])).length === 1, {
      timeoutMs: 30_000,
      what: 'the replayed 404 back in the DLQ',
    });

    // Sessions: listed from the registry, shown, keys rotated online, one purged.
    const listed = await json<Array<{ sessionId: string; slates: string[] }>>(['sessions', 'list']);
    expect(listed.map((session) => session.sessionId)).toEqual(sessions);
    const masters = new Set(sessions.map((session) => ownerOf(keyLayout(prefix).session('default', session).base)));
    expect(masters.size).toBeGreaterThan(1);
    const shown = await json<{ cookies: Array<{ name: string }> }>(['sessions', 'show', 's1']);
    expect(shown.cookies.map((cookie) => cookie.name)).toContain(prefix);
    const generated = (await cli(['keys', 'generate'])).stdout.trim();
    const rotated = await json<{ resealed: number; unreadable: number }>(['keys', 'rotate'], {
      CRAWLFLEET_KEYS: `${generated},${TEST_KEYS}`,
    });
    expect(rotated).toMatchObject({ unreadable: 0 });
    expect(rotated.resealed).toBeGreaterThanOrEqual(sessions.length);
    const reopened = await json<{ cookies: unknown[] }>(['sessions', 'show', 's2'], { CRAWLFLEET_KEYS: generated });
    expect(reopened.cookies).toHaveLength(1);
    expect((await cli(['sessions', 'purge', 's0'])).stderr).toMatch(/purged session s0/);
    expect((await json<unknown[]>(['sessions', 'list'])).length).toBe(sessions.length - 1);

    // Every stored result, from every shard's outbox.
    const exported = (await cli(['results', 'export'])).stdout.trim().split('\n');
    expect(exported).toHaveLength(36);
    expect(new Set(exported.map((line) => JSON.parse(line).idempotencyKey)).size).toBe(36);

    // The board lists each shard's queues.
    const port = await freePort();
    const board = startCliProcess(['board', '--port', String(port)], {
      ...env,
      CRAWLFLEET_BOARD_USER: 'ops',
      CRAWLFLEET_BOARD_PASSWORD: 'cluster-board-secret',
      CRAWLFLEET_BOARD_TOKEN: undefined,
    });
    try {
      await waitFor(() => board.stderr().includes('board on '), { what: 'the board to start' });
      const answer = await fetch(`http://127.0.0.1:${port}/api/queues`, {
        headers: { authorization: `Basic ${Buffer.from('ops:cluster-board-secret').toString('base64')}` },
      }).catch((error: Error) => {
        throw new Error(
          `the board on port ${port} did not answer (${error.cause ?? error.message}); it said: ${board.stderr()}`,
        );
      });
      expect(answer.status).toBe(200);
      const body = (await answer.json()) as { queues: Array<{ displayName?: string; name: string }> };
      const names = body.queues.map((queue) => queue.displayName ?? queue.name);
      for (const shard of keyLayout(prefix, SHARDS).shards)
        expect(names).toContain(`crawl (shard ${shard.index}, ${shard.tag})`);
      expect(names).toContain('crawl-dlq');
    } finally {
      board.child.kill('SIGTERM');
      await board.exited;
    }
    await Promise.all(workers.map((worker) => worker.stop('SIGTERM')));
  }, 180_000);

  it("follows a named crawl's links over the shards: each page within its depth once, its page limit for the whole fleet, and the quick path", async () => {
    const prefix = `crawls-${randomBytes(3).toString('hex')}`;
    const env = fleetEnv(prefix);
    const keys = keyLayout(prefix, SHARDS);
    const shown = async (name: string) => {
      const answer = await runCli(['crawls', 'show', name, '--json'], { env });
      expect(answer.code, answer.stderr).toBe(0);
      return JSON.parse(answer.stdout) as { stored: number; discovered: number; pending: number };
    };
    const drained = (name: string, pages: number) =>
      waitFor(
        async () => {
          const status = await shown(name);
          return status.stored >= pages && status.pending === 0;
        },
        { timeoutMs: 90_000, intervalMs: 250, what: `crawl ${name}: ${pages} pages stored, none pending` },
      );
    workers = [0, 1].map(() => startWorkerProcess(env, ['--concurrency', '8']));

    // Depth 3 of the link graph: its links cross the shards, and the crawl's seen set (on the fleet tag) admits each once.
    site.resetHits();
    const deep = graphPagesWithin(3);
    const submitted = await runCli(
      ['submit', '--crawl', 'graph', '--follow', 'same-hostname', '--max-depth', '3', site.url('/graph/')],
      { env },
    );
    expect(submitted.code, submitted.stderr).toBe(0);
    await drained('graph', deep.size);
    for (const path of deep.keys()) expect(site.hits(path), path).toBe(1);
    expect(site.hitsByPrefix('/graph')).toBe(deep.size);
    expect(await shown('graph')).toMatchObject({ discovered: deep.size, stored: deep.size, pending: 0 });
    const exported = (await runCli(['results', 'export', '--crawl', 'graph'], { env })).stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { idempotencyKey: string; depth: number; url: string });
    expect(exported).toHaveLength(deep.size);
    expect(new Set(exported.map((result) => keys.shardOf(result.idempotencyKey).index)).size).toBe(SHARDS);
    for (const result of exported) {
      const url = new URL(result.url);
      expect(result.depth, result.url).toBe(deep.get(`${url.pathname}${url.search}`));
    }

    // A page limit holds for the whole fleet, whichever shard a page and its links are on.
    site.resetHits();
    const capped = await runCli(
      ['submit', '--crawl', 'capped', '--follow', 'same-hostname', '--max-pages', '50', site.url('/graph/')],
      { env },
    );
    expect(capped.code, capped.stderr).toBe(0);
    await drained('capped', 50);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(site.hitsByPrefix('/graph')).toBe(50);
    expect(await shown('capped')).toMatchObject({ discovered: 50, stored: 50, pending: 0 });
    await Promise.all(workers.map((worker) => worker.stop('SIGTERM')));
    workers = [];

    // The quick path, on its own: crawl --follow --out ends when the crawl has nothing left, links included.
    site.resetHits();
    const out = join(dir, `${prefix}.jsonl`);
    const crawled = await runCli(
      ['crawl', '--json', '--follow', 'same-hostname', '--max-depth', '2', '--out', out, site.url('/graph/')],
      { env },
    );
    expect(crawled.code, crawled.stderr).toBe(0);
    const shallow = graphPagesWithin(2);
    expect(JSON.parse(crawled.stdout)).toMatchObject({
      fetched: shallow.size,
      dlq: 0,
      left: 0,
      discovered: shallow.size,
    });
    const lines = readFileSync(out, 'utf8').split('\n').filter(Boolean);
    expect(lines).toHaveLength(shallow.size);
    expect(site.hitsByPrefix('/graph')).toBe(shallow.size);
  }, 240_000);

  /** The shard each page's job was on, read back from the rows' idempotency keys. */
  async function pageShards(run: Run, paths: readonly string[]): Promise<number[]> {
    if (paths.length === 0) return [];
    const table = tables[tables.length - 1] as string;
    const keys = keyLayout(run.prefix, SHARDS);
    const answer = await db.query(`SELECT url, idempotency_key FROM "${table}" WHERE url = ANY($1)`, [
      paths.map((path) => site.url(path)),
    ]);
    expect(answer.rows).toHaveLength(paths.length);
    return answer.rows.map((row: { idempotency_key: string }) => keys.shardOf(row.idempotency_key).index);
  }
});
