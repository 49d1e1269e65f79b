import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_PREFIX, keyLayout, parseSessionKey } from '@crawlfleet/core';
import { DeadLetterQueue } from '@crawlfleet/dlq';
import { type RedisServer, startRedisServer } from '@crawlfleet/local-redis';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { type CliResult, runCli, waitFor } from '../src/harness.js';
import { startWorkerProcess, type WorkerProcess } from '../src/processes.js';
import { soleShard } from '../src/shard.js';

/**
 * A one-node Redis Cluster owns all 16384 slots, so the product's plain single-endpoint clients
 * work against it without redirects, while the node still refuses every multi-key command,
 * MULTI or script whose declared keys hash to different slots (CROSSSLOT). Redis does not check
 * the keys a legacy script (no `#!lua` line, as BullMQ's and ours are) builds inside Lua, so the
 * test also records every command with MONITOR and checks each script and transaction itself.
 */

const HOST_DELAY_MS = 150;
/** What the run found (key families and slots, MONITOR and error counts), kept for people to read. */
const REPORT = fileURLToPath(new URL('../artifacts/redis-cluster-keys.txt', import.meta.url));
const CROSS_SLOT = /CROSSSLOT|hash to the same slot|non local key/i;
const keys = keyLayout(DEFAULT_PREFIX);
const FLEET_SLOT_TAG = DEFAULT_PREFIX;

/** One line of MONITOR: who sent it (`lua` for a command run by a script) and its arguments. */
interface Logged {
  source: string;
  args: string[];
}

describe('the key layout on Redis Cluster (a one-node cluster that enforces the slot rules)', () => {
  let server: RedisServer;
  let redis: Redis;
  let monitor: Redis | undefined;
  let site: FixtureSite;
  let dir: string;
  let env: Record<string, string>;
  let worker: WorkerProcess | undefined;
  let logged: Logged[] = [];
  const outputs: string[] = [];
  const report: string[] = [];
  const record = (text: string) => {
    report.push(text);
    process.stdout.write(`${text}\n`);
  };

  const cli = async (args: string[]): Promise<CliResult> => {
    const result = await runCli(args, { env });
    outputs.push(`$ crawlfleet ${args.join(' ')}\n${result.stdout}${result.stderr}`);
    expect(result.code, `crawlfleet ${args.join(' ')}: ${result.stderr}`).toBe(0);
    return result;
  };
  const cliJson = async <T>(args: string[]): Promise<T> => JSON.parse((await cli(args)).stdout) as T;
  /** Resolves once MONITOR has delivered everything sent before this call. */
  const syncMonitor = async () => {
    const marker = `monitor-sync-${Date.now()}-${Math.random()}`;
    await redis.echo(marker);
    await waitFor(() => logged.some((line) => line.args[1] === marker), { timeoutMs: 10_000, what: 'MONITOR' });
  };
  let dlq: DeadLetterQueue | undefined;
  const dlqLength = () => {
    dlq ??= new DeadLetterQueue(redis, keys);
    return dlq.count();
  };

  beforeAll(async () => {
    server = await startRedisServer({ args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf'] });
    redis = new Redis(server.url, { maxRetriesPerRequest: null });
    await redis.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
    await waitFor(async () => String(await redis.call('CLUSTER', 'INFO')).includes('cluster_state:ok'), {
      timeoutMs: 10_000,
      what: 'cluster_state:ok',
    });
    monitor = await redis.monitor();
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      logged.push({ source, args });
    });
    site = await startFixtureSite();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-cluster-'));
    const config = join(dir, 'crawlfleet.config.json');
    writeFileSync(
      config,
      JSON.stringify({
        tenants: {
          default: { allowHosts: ['127.0.0.1'], hostDelayMs: HOST_DELAY_MS },
          member: {
            allowHosts: ['127.0.0.1'],
            auth: { login: { url: site.url('/login'), form: { user: 'alice', password: '${FIXTURE_PASSWORD}' } } },
          },
        },
        jobs: { retries: 2, backoffBaseMs: 50, backoffMaxMs: 200 },
        breakers: { failureThreshold: 2, resetTimeoutMs: 500 },
      }),
    );
    // CRAWLFLEET_PREFIX empty: the default prefix, whatever this process's environment says.
    env = {
      REDIS_URL: server.url,
      CRAWLFLEET_SESSION_REDIS_URL: '',
      CRAWLFLEET_PREFIX: '',
      CRAWLFLEET_CONFIG: config,
      CRAWLFLEET_LOG_LEVEL: 'info',
      FIXTURE_PASSWORD: 'secret',
    };
  });

  afterAll(async () => {
    await worker?.stop('SIGKILL');
    await dlq?.close();
    monitor?.disconnect();
    redis?.disconnect();
    await server?.stop();
    await site?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    if (report.length > 0) {
      mkdirSync(dirname(REPORT), { recursive: true });
      writeFileSync(REPORT, `${report.join('\n')}\n`);
    }
  });

  it('refuses cross-slot commands, and the MONITOR check catches what a legacy script hides', async () => {
    expect(await redis.call('CLUSTER', 'KEYSLOT', 'a')).not.toBe(await redis.call('CLUSTER', 'KEYSLOT', 'b'));
    await expect(redis.mset('a', '1', 'b', '2')).rejects.toThrow(/CROSSSLOT/);
    await expect(redis.eval('return 1', 2, 'a', 'b')).rejects.toThrow(/CROSSSLOT/);
    await expect(redis.multi().set('a', '1').set('b', '1').exec()).rejects.toThrow(/CROSSSLOT|EXECABORT/);
    // A script with a `#!lua` line is checked for undeclared keys of another slot...
    await expect(redis.eval("#!lua\nreturn redis.call('GET', 'b')", 1, 'a')).rejects.toThrow(/same slot/);
    // ...a legacy one is not (it would break on a real cluster once the slots live on two nodes).
    expect(await redis.eval("return redis.call('GET', 'b')", 1, 'a')).toBeNull();
    expect(await redis.mset('{sanity}a', '1', '{sanity}b', '2')).toBe('OK');
    expect(await redis.del('{sanity}a', '{sanity}b')).toBe(2);
    expect((await errorStats(redis)).rejected).toMatchObject({ mset: 1, eval: 1 });
    await syncMonitor();
    const check = await checkSlots(redis, logged);
    expect(check.violations.map((v) => v.keys)).toEqual([['a', 'b']]);
    logged = [];
    await redis.call('CONFIG', 'RESETSTAT');
  });

  it('runs submit, crawl, a worker, a login, robots, pacing, a 429, a breaker and a DLQ replay', async () => {
    worker = startWorkerProcess(env, ['--concurrency', '4']);
    const defaults = ['/ok/1', '/ok/2', '/ok/3', '/json/a', '/ratelimit/rl?retryAfter=1&times=1'];
    const failing = ['/status/404', '/status/410', '/private/secret', '/flaky/f2?fails=3&status=503'];
    const [plain, member, sessionS2] = await Promise.all([
      cliJson<{ enqueued: number }>([
        'submit',
        '--json',
        ...[...defaults, '/flaky/f1?fails=1', ...failing].map(site.url),
      ]),
      cliJson<{ enqueued: number }>([
        'submit',
        '--json',
        '--tenant',
        'member',
        '--session',
        'alice',
        ...['/protected/p1', '/protected/p2', '/protected/p3'].map(site.url),
      ]),
      cliJson<{ enqueued: number }>([
        'submit',
        '--json',
        '--session',
        's2',
        site.url('/cookies/set?s2=1'),
        site.url('/status/404?session=s2'),
      ]),
      cli(['crawl', '--session', 'c1', site.url('/cookies/set?c1=1'), site.url('/json/c1')]),
      // Cookies first, then a challenge: the quarantine deletes the slates and flags the session.
      cli(['crawl', '--session', 'q1', site.url('/cookies/set?q1=1')]).then(() =>
        cli(['submit', '--session', 'q1', site.url('/waf')]),
      ),
    ]);
    expect([plain.enqueued, member.enqueued, sessionS2.enqueued]).toEqual([10, 3, 2]);
    // Only this worker process runs it, so one breaker sees both failures and opens for the fleet.
    await cli(['submit', '--session', 'b1', site.url('/flaky/b1?fails=2&status=503')]);

    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === 14 && (await dlqLength()) === 6, {
      timeoutMs: 30_000,
      what: '14 results and 6 dead letters',
    });
    const letters = await cliJson<Array<{ id: string; url: string; class: string; reason: string }>>([
      'dlq',
      'list',
      '--json',
    ]);
    const byPath = new Map(letters.map((l) => [new URL(l.url).pathname + new URL(l.url).search, l]));
    expect(Object.fromEntries([...byPath].map(([path, l]) => [path, `${l.class}/${l.reason}`]))).toEqual({
      '/status/404': 'non_recoverable/http_404',
      '/status/410': 'non_recoverable/http_410',
      '/private/secret': 'non_recoverable/robots_disallowed',
      '/flaky/f2?fails=3&status=503': 'recoverable/retries_exhausted:http_503',
      '/status/404?session=s2': 'non_recoverable/http_404',
      '/waf': expect.stringMatching(/^compliance_blocked\//),
    });

    // Robots: fetched once for the fleet, and the disallowed page never requested.
    expect(site.hits('/robots.txt')).toBe(1);
    expect(site.hits('/private/secret')).toBe(0);
    // The 429 waited for its Retry-After before the retry.
    const [first, second] = site.hitTimes('/ratelimit/rl?retryAfter=1&times=1');
    expect((second ?? 0) - (first ?? 0)).toBeGreaterThanOrEqual(900);
    // One login for the session, however many protected pages.
    expect(site.logins()).toBeGreaterThanOrEqual(1);
    expect(site.logins()).toBeLessThanOrEqual(2);
    // The default tenant's requests kept the host's pace across three processes.
    const paced = [
      ...defaults,
      '/flaky/f1?fails=1',
      '/status/404',
      '/status/410',
      '/flaky/f2?fails=3&status=503',
      '/cookies/set?s2=1',
      '/status/404?session=s2',
      '/cookies/set?c1=1',
      '/json/c1',
      '/cookies/set?q1=1',
      '/waf',
      '/flaky/b1?fails=2&status=503',
    ]
      .flatMap((path) => site.hitTimes(path))
      .sort((a, b) => a - b);
    const gaps = paced.slice(1).map((t, i) => t - (paced[i] as number));
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(HOST_DELAY_MS / 3);
    expect((paced.at(-1) as number) - (paced[0] as number)).toBeGreaterThanOrEqual(
      (paced.length - 1) * HOST_DELAY_MS - 100,
    );

    const f2 = byPath.get('/flaky/f2?fails=3&status=503');
    const notFound = byPath.get('/status/404');
    const replay = await cliJson<{ replayed: string[] }>([
      'dlq',
      'replay',
      '--json',
      String(f2?.id),
      String(notFound?.id),
    ]);
    expect(replay.replayed.sort()).toEqual([String(f2?.id), String(notFound?.id)].sort());
    // f2 succeeds on its 4th request; the 404 fails again and is back in the DLQ.
    await waitFor(
      async () =>
        (await redis.xlen(soleShard(keys).results)) === 15 &&
        (await dlqLength()) === 5 &&
        site.hits('/status/404') === 2,
      { timeoutMs: 20_000, what: 'the replayed jobs' },
    );
  });

  it('lays out keys so fleet keys share the {cf} slot and each session has its own', async () => {
    const found = await scanAll(redis);
    const fleetSlot = Number(await redis.call('CLUSTER', 'KEYSLOT', FLEET_SLOT_TAG));
    const families = new Map<string, { keys: number; slots: Set<number> }>();
    const sessionSlots = new Map<string, { slots: Set<number>; tagSlot: number }>();
    const unknown: string[] = [];
    for (const [key, slot] of found) {
      const fleet = fleetFamily(key);
      const session = parseSessionKey(DEFAULT_PREFIX, key);
      const family =
        fleet ??
        (session === undefined ? undefined : `${DEFAULT_PREFIX}:session:{<tenant>/<session>}:${session.slate}`);
      if (family === undefined) {
        unknown.push(key);
        continue;
      }
      const entry = families.get(family) ?? { keys: 0, slots: new Set<number>() };
      entry.keys++;
      entry.slots.add(slot);
      families.set(family, entry);
      if (session !== undefined) {
        const id = `${session.tenant}/${session.sessionId}`;
        const tagSlot = Number(await redis.call('CLUSTER', 'KEYSLOT', id));
        const bySession = sessionSlots.get(id) ?? { slots: new Set<number>(), tagSlot };
        bySession.slots.add(slot);
        sessionSlots.set(id, bySession);
      }
    }
    const table = [...families]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(
        ([family, { keys: count, slots }]) => `${family.padEnd(52)} ${String(count).padStart(4)}  slots ${[...slots]}`,
      );
    const sessions = [...sessionSlots].map(([id, { slots }]) => `${id} -> slot ${[...slots]}`);
    record(`key families on the cluster (fleet slot ${fleetSlot}):\n${table.join('\n')}\n${sessions.join('\n')}`);

    expect(unknown).toEqual([]);
    for (const [family, { slots }] of families)
      if (!family.startsWith(`${DEFAULT_PREFIX}:session:`)) expect([family, ...slots]).toEqual([family, fleetSlot]);
    for (const [id, { slots, tagSlot }] of sessionSlots) expect([id, ...slots]).toEqual([id, tagSlot]);
    for (const family of [
      '{cf}:crawl:<job>',
      '{cf}:crawl:completed',
      '{cf}:crawl-dlq:<job>',
      '{cf}:results',
      '{cf}:audit',
      '{cf}:ledger:<key>',
      '{cf}:host:<host>',
      '{cf}:robots:<origin>',
      '{cf}:session-hash-key',
      'cf:session:{<tenant>/<session>}:cookies',
      'cf:session:{<tenant>/<session>}:auth',
      'cf:session:{<tenant>/<session>}:meta',
      'cf:session:{<tenant>/<session>}:flag:quarantine',
    ])
      expect(families.has(family), family).toBe(true);
    expect([...sessionSlots.keys()].sort()).toEqual([
      'default/b1',
      'default/c1',
      'default/q1',
      'default/s2',
      'member/alice',
    ]);
    // Sessions spread over slots rather than sharing the fleet's.
    expect(new Set([...sessionSlots.values()].map((s) => s.tagSlot)).size).toBe(5);
    expect([...sessionSlots.values()].some((s) => s.tagSlot === fleetSlot)).toBe(false);
  });

  it('inspects and purges through the CLI: status, export, audit, sessions, purge --older-than', async () => {
    const [status, exported, audit, listed, shown] = await Promise.all([
      cliJson<{ counts: Record<string, number>; results: number }>(['status', '--json']),
      cli(['results', 'export']),
      cliJson<Array<{ kind: string; reason?: string }>>(['audit', '--json', '--limit', '1000']),
      cliJson<Array<{ tenant: string; sessionId: string; slates: string[] }>>(['sessions', 'list', '--json']),
      cliJson<{ cookies: Array<{ name: string }>; auth: { expiresAt: string } | null; meta: { jobs: number } }>([
        'sessions',
        'show',
        'alice',
        '--tenant',
        'member',
        '--json',
      ]),
    ]);
    expect(status).toMatchObject({ counts: { waiting: 0, active: 0, delayed: 0, dlq: 5 }, results: 15 });
    const results = exported.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { url: string; status: number; attempts: number });
    expect(results).toHaveLength(15);
    expect(results.every((r) => r.status === 200)).toBe(true);
    const attemptsOf = (path: string) => results.find((r) => r.url === site.url(path))?.attempts;
    expect(attemptsOf('/ratelimit/rl?retryAfter=1&times=1')).toBe(2);
    expect(attemptsOf('/flaky/b1?fails=2&status=503')).toBe(3);
    const kinds = new Set(audit.map((e) => e.kind));
    for (const kind of ['retry', 'dlq', 'quarantine', 'replay', 'breaker_open', 'breaker_half_open', 'breaker_closed'])
      expect([kind, kinds.has(kind)]).toEqual([kind, true]);
    expect(audit.some((e) => e.kind === 'retry' && e.reason === 'http_429')).toBe(true);
    // q1 was quarantined: its slates are gone, only its flag is left.
    expect(listed.map((s) => `${s.tenant}/${s.sessionId}`).sort()).toEqual([
      'default/b1',
      'default/c1',
      'default/s2',
      'member/alice',
    ]);
    expect(listed.find((s) => s.sessionId === 'alice')?.slates).toEqual(
      expect.arrayContaining(['cookies', 'auth', 'meta']),
    );
    expect(shown.cookies.map((c) => c.name)).toContain('auth');
    expect(shown.auth?.expiresAt).toMatch(/^\d{4}-/);
    expect(shown.meta.jobs).toBe(3);

    const purgedSession = await cli(['sessions', 'purge', 's2']);
    expect(purgedSession.stderr).toMatch(/purged session s2 \(tenant default\): \d+ keys/);
    expect(await scanAll(redis, 'cf:session:{default/s2}:*')).toEqual(new Map());

    expect(await worker?.stop('SIGTERM')).toBe(0);
    const counts = {
      results: await redis.xlen(soleShard(keys).results),
      audit: await redis.xlen(keys.audit),
      dlq: await dlqLength(),
    };
    expect(counts).toMatchObject({ results: 15, dlq: 5 });
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect(await cliJson(['purge', '--older-than', '1s', '--json'])).toEqual(counts);
    expect([await redis.xlen(soleShard(keys).results), await redis.xlen(keys.audit), await dlqLength()]).toEqual([
      0, 0, 0,
    ]);
  });

  it('kept every command, script and transaction of the whole run on one slot', async () => {
    // Read first: the check below runs COMMAND GETKEYS on keyless commands, which counts as errors.
    const stats = await errorStats(redis);
    record(`Redis error stats of the run: ${JSON.stringify(stats)}`);
    // A CROSSSLOT refusal counts as a rejected call of its command (see the first test).
    expect(stats.rejected).toEqual({});
    // ERR: ioredis sends CLIENT SETINFO, which Redis 7.0 does not know, on every connection.
    // NOSCRIPT: an EVALSHA before the script is loaded; the client then sends the script.
    expect(Object.keys(stats.errors).filter((kind) => kind !== 'ERR' && kind !== 'NOSCRIPT')).toEqual([]);

    await syncMonitor();
    const check = await checkSlots(redis, logged);
    record(
      `MONITOR: ${logged.length} commands, ${check.scripts} scripts (${check.undeclared} touched keys they did not declare), ${check.transactions} transactions, ${check.multiKey} units with more than one key`,
    );
    expect(check.violations).toEqual([]);
    expect(check.unparsed).toEqual([]);
    expect(check.scripts).toBeGreaterThan(100);
    expect(check.undeclared).toBeGreaterThan(0);
    expect(check.transactions).toBeGreaterThan(0);

    expect(worker?.output()).not.toMatch(CROSS_SLOT);
    for (const output of outputs) expect(output).not.toMatch(CROSS_SLOT);
  });
});

/** Calls Redis refused per command (CROSSSLOT among them), and errors per kind (`ERR`, `CROSSSLOT`, ...). */
async function errorStats(redis: Redis): Promise<{ rejected: Record<string, number>; errors: Record<string, number> }> {
  const rejected: Record<string, number> = {};
  for (const [, command, count] of String(await redis.call('INFO', 'commandstats')).matchAll(
    /^cmdstat_([^:]+):.*rejected_calls=(\d+)/gm,
  ))
    if (Number(count) > 0) rejected[command as string] = Number(count);
  const errors: Record<string, number> = {};
  for (const [, kind, count] of String(await redis.call('INFO', 'errorstats')).matchAll(
    /^errorstat_([^:]+):count=(\d+)/gm,
  ))
    errors[kind as string] = Number(count);
  return { rejected, errors };
}

const BULL_QUEUE_KEYS = new Set([
  'wait',
  'paused',
  'active',
  'delayed',
  'prioritized',
  'completed',
  'failed',
  'stalled',
  'stalled-check',
  'meta',
  'id',
  'events',
  'marker',
  'pc',
  'limiter',
  'de',
  'repeat',
]);

/** The family of a fleet key (`{cf}:...`), with variable parts named; undefined otherwise. */
function fleetFamily(key: string): string | undefined {
  const tag = `{${DEFAULT_PREFIX}}:`;
  if (!key.startsWith(tag)) return undefined;
  const rest = key.slice(tag.length);
  const [head = '', ...tail] = rest.split(':');
  if (tail.length === 0) return key;
  if (head === 'crawl' || head === 'crawl-dlq') {
    const [name = '', ...more] = tail;
    if (more.length === 0 && BULL_QUEUE_KEYS.has(name)) return `${tag}${head}:${name}`;
    return `${tag}${head}:<job>${more.length > 0 ? `:${more.join(':')}` : ''}`;
  }
  if (head === 'robots') return `${tag}robots:<origin>${rest.endsWith(':lease') ? ':lease' : ''}`;
  const placeholder: Record<string, string> = { ledger: '<key>', host: '<host>' };
  return `${tag}${head}:${placeholder[head] ?? '<?>'}`;
}

/** Every key (matching `pattern`) with its slot. */
async function scanAll(redis: Redis, pattern = '*'): Promise<Map<string, number>> {
  const found: string[] = [];
  let cursor = '0';
  for (let pages = 0; pages < 10_000; pages++) {
    const [next, page] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    found.push(...page);
    cursor = next;
    if (cursor === '0') break;
  }
  const pipeline = redis.pipeline();
  for (const key of found) pipeline.call('CLUSTER', 'KEYSLOT', key);
  const slots = (await pipeline.exec()) ?? [];
  return new Map(found.map((key, i) => [key, Number(slots[i]?.[1])]));
}

interface SlotCheck {
  /** Units (a command, a script with what it ran, a transaction) whose keys span slots. */
  violations: Array<{ what: string; keys: string[] }>;
  scripts: number;
  /** Scripts that touched keys beyond their declared KEYS (Redis does not check those itself). */
  undeclared: number;
  transactions: number;
  multiKey: number;
  /** Commands that take keys but whose keys COMMAND GETKEYS could not tell (none expected). */
  unparsed: string[];
}

const SCRIPT_COMMANDS = new Set(['eval', 'evalsha', 'eval_ro', 'evalsha_ro', 'fcall', 'fcall_ro']);

/**
 * Groups a MONITOR log into the units Redis Cluster requires on one slot: each command, each
 * script together with the commands it ran (logged right after it, as `lua`), and each
 * MULTI ... EXEC of one connection. Keys come from COMMAND GETKEYS, slots from CLUSTER KEYSLOT.
 */
async function checkSlots(redis: Redis, lines: readonly Logged[]): Promise<SlotCheck> {
  const commands = lines.filter((line) => !['multi', 'exec', 'discard'].includes(line.args[0]?.toLowerCase() ?? ''));
  const pipeline = redis.pipeline();
  for (const line of commands) pipeline.call('COMMAND', 'GETKEYS', ...line.args);
  const answers = (await pipeline.exec()) ?? [];
  const keysOf = new Map<Logged, string[]>();
  const unknownNames = new Set<string>();
  commands.forEach((line, i) => {
    const [error, value] = answers[i] ?? [];
    if (error) unknownNames.add(String(line.args[0]).toLowerCase());
    keysOf.set(line, error ? [] : (value as string[]));
  });
  // A command GETKEYS refused must be one that takes no keys at all.
  const unparsed: string[] = [];
  for (const name of unknownNames) {
    const [info] = (await redis.call('COMMAND', 'INFO', name)) as Array<[string, number, string[], number] | null>;
    if (info === null || info === undefined || info[3] !== 0 || info[2].includes('movablekeys')) unparsed.push(name);
  }

  interface Unit {
    source: string;
    name: string;
    what: string;
    keys: Set<string>;
    /** A script's declared KEYS. */
    declared?: Set<string>;
  }
  const units: Unit[] = [];
  for (const line of lines) {
    const lineKeys = keysOf.get(line) ?? [];
    if (line.source === 'lua') {
      // Logged right after the script that runs it: no other command runs in between.
      for (const key of lineKeys) units.at(-1)?.keys.add(key);
      continue;
    }
    const name = line.args[0]?.toLowerCase() ?? '';
    const unit: Unit = {
      source: line.source,
      name,
      what: line.args.slice(0, 3).join(' ').slice(0, 120),
      keys: new Set(lineKeys),
    };
    if (SCRIPT_COMMANDS.has(name)) unit.declared = new Set(lineKeys);
    units.push(unit);
  }
  // A transaction's commands are logged when EXEC runs them: right before the EXEC line, after the
  // connection's MULTI, with nothing of other connections in between. An aborted EXEC logs nothing.
  const transactions: Unit[] = [];
  units.forEach((unit, i) => {
    if (unit.name !== 'exec') return;
    const keys = new Set<string>();
    for (let j = i - 1; j >= 0; j--) {
      const queued = units[j] as Unit;
      if (queued.source !== unit.source || queued.name === 'multi' || queued.name === 'exec') break;
      for (const key of queued.keys) keys.add(key);
    }
    transactions.push({ source: unit.source, name: 'multi', what: 'MULTI ... EXEC', keys });
  });
  units.push(...transactions);

  const allKeys = [...new Set(units.flatMap((unit) => [...unit.keys]))];
  const slotPipeline = redis.pipeline();
  for (const key of allKeys) slotPipeline.call('CLUSTER', 'KEYSLOT', key);
  const slotAnswers = (await slotPipeline.exec()) ?? [];
  const slotOf = new Map(allKeys.map((key, i) => [key, Number(slotAnswers[i]?.[1])]));
  const violations = units
    .filter((unit) => new Set([...unit.keys].map((key) => slotOf.get(key))).size > 1)
    .map((unit) => ({ what: unit.what, keys: [...unit.keys].sort() }));
  const scripts = units.filter((unit) => unit.declared !== undefined);
  return {
    violations,
    scripts: scripts.length,
    undeclared: scripts.filter((unit) => [...unit.keys].some((key) => !unit.declared?.has(key))).length,
    transactions: transactions.length,
    multiKey: units.filter((unit) => unit.keys.size > 1).length,
    unparsed,
  };
}
