import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { request } from 'node:http';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { type FailurePolicy, type RunningBoard, startBoard } from '@crawlfleet/board';
import { freePort } from '@crawlfleet/local-redis';
import { createLogger } from '@crawlfleet/log';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI_PATH,
  childEnv,
  cleanupPrefix,
  keyLayout,
  openTestRedis,
  runCli,
  testConfig,
  uniquePrefix,
  waitFor,
} from '../src/harness.js';

const USER = 'ops';
const PASSWORD = 'correct horse battery staple';
const basic = (user: string, password: string, scheme = 'Basic') =>
  `${scheme} ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const RIGHT = basic(USER, PASSWORD);

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One GET to the board from `localAddress` (any 127.x.y.z is this machine). */
function ask(url: string, options: { authorization?: string; localAddress?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        agent: false,
        ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
        headers: options.authorization === undefined ? {} : { authorization: options.authorization },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** A board logger whose JSON lines the test can read. */
function capturedLogger() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  const logger = createLogger({ name: 'board', level: 'info', destination });
  return { logger, records: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>), text: () => lines };
}

describe('the board sign-in lock-out', () => {
  let redis: Redis;
  const prefix = uniquePrefix('board-lockout');
  const boards: RunningBoard[] = [];

  async function openBoard(failurePolicy: FailurePolicy, logger = capturedLogger().logger) {
    const board = await startBoard({
      connection: redis,
      keys: keyLayout(prefix),
      config: testConfig(),
      auth: { kind: 'basic', user: USER, password: PASSWORD },
      port: 0,
      failurePolicy,
      logger,
    });
    boards.push(board);
    return board;
  }

  beforeAll(() => {
    redis = openTestRedis();
  });
  afterEach(async () => {
    await Promise.all(boards.splice(0).map((board) => board.close()));
  });
  afterAll(async () => {
    await cleanupPrefix(redis, prefix);
    redis.disconnect();
  });

  it('lets at most N of 100 parallel guesses from a slowed-down address reach the password check; the right one gets 429', async () => {
    const log = capturedLogger();
    const board = await openBoard(
      {
        maxFailuresPerAddress: 10,
        maxFailuresPerUser: 1_000,
        windowMs: 5_000,
        freeFailures: 2,
        delayPerFailureMs: 100,
      },
      log.logger,
    );
    const url = new URL('api/queues', board.url).toString();
    // The address is being slowed down already.
    for (let i = 0; i < 3; i++)
      expect((await ask(url, { authorization: basic(USER, `warm-up-${i}`) })).status).toBe(401);

    // 99 wrong guesses and the right password last, all at once.
    const guesses = Array.from({ length: 100 }, (_, i) => (i === 99 ? RIGHT : basic(USER, `guess-${i}`)));
    const answers = await Promise.all(guesses.map((authorization) => ask(url, { authorization })));
    const refused = answers.filter((answer) => answer.status === 429);
    // 3 warm-up failures + at most 7 more reached the check; every other guess was refused unchecked.
    expect(answers.length - refused.length).toBeLessThanOrEqual(7);
    expect(answers.filter((answer) => answer.status !== 429).map((answer) => answer.status)).toEqual(
      Array(answers.length - refused.length).fill(401),
    );
    expect(answers[99]?.status).toBe(429);
    for (const answer of refused) {
      const retryAfter = Number(answer.headers['retry-after']);
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(5);
    }

    // The right password alone, during the lock-out: still 429, and told when to come back.
    const locked = await ask(url, { authorization: RIGHT });
    expect(locked.status).toBe(429);
    const retryAfter = Number(locked.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);

    // Logged: who (address and user), never a password or a guess.
    const warnings = log.records().filter((record) => record.level === 40);
    expect(warnings).toContainEqual(
      expect.objectContaining({ msg: 'board sign-in locked out', scope: 'address', user: USER, address: '127.0.0.*' }),
    );
    expect(warnings).toContainEqual(expect.objectContaining({ msg: 'board sign-in refused while locked out' }));
    expect(log.text().join('\n')).not.toMatch(/correct horse|guess-|warm-up-/);

    // After the lock-out, the right password works again from the same address.
    await sleep(retryAfter * 1_000);
    expect((await ask(url, { authorization: RIGHT })).status).toBe(200);
  });

  it('refuses a wrong failure policy before it opens anything, naming the field', async () => {
    const open = (failurePolicy: Record<string, unknown>) =>
      startBoard({
        connection: redis,
        keys: keyLayout(prefix),
        config: testConfig(),
        auth: { kind: 'basic', user: USER, password: PASSWORD },
        port: 0,
        failurePolicy,
      });
    await expect(open({ windowMs: 0 })).rejects.toMatchObject({
      code: 'invalid_setting',
      message: 'failurePolicy.windowMs: Too small: expected number to be >=1',
    });
    await expect(open({ maxFailuresPerAdress: 3 })).rejects.toMatchObject({
      code: 'invalid_setting',
      message: 'failurePolicy: Unrecognized key: "maxFailuresPerAdress"',
    });
  });

  it('locks a user name out whatever address the guesses come from, and leaves other names alone', async () => {
    const board = await openBoard({ maxFailuresPerAddress: 100, maxFailuresPerUser: 5, windowMs: 60_000 });
    const url = new URL('api/queues', board.url).toString();
    for (let i = 0; i < 5; i++) {
      const guess = await ask(url, { authorization: basic(USER, `guess-${i}`), localAddress: `127.0.0.${10 + i}` });
      expect(guess.status).toBe(401);
    }
    const right = await ask(url, { authorization: RIGHT, localAddress: '127.0.0.20' });
    expect(right.status).toBe(429);
    expect(Number(right.headers['retry-after'])).toBeGreaterThan(50);
    const otherName = await ask(url, { authorization: basic('someone', 'else'), localAddress: '127.0.0.20' });
    expect(otherName.status).toBe(401);
  });

  it('counts neither requests without credentials nor right ones as failures', async () => {
    const board = await openBoard({ maxFailuresPerAddress: 3, windowMs: 60_000 });
    const url = new URL('api/queues', board.url).toString();
    for (let i = 0; i < 10; i++) expect((await ask(url)).status).toBe(401);
    for (let i = 0; i < 10; i++) expect((await ask(url, { authorization: RIGHT })).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await ask(url, { authorization: basic(USER, 'nope') })).status).toBe(401);
    expect((await ask(url, { authorization: RIGHT })).status).toBe(200);
    expect((await ask(url, { authorization: basic(USER, 'nope') })).status).toBe(401);
    const locked = await ask(url);
    expect(locked.status).toBe(429);
    expect(locked.headers['retry-after']).toBeDefined();
    expect(locked.headers['x-powered-by']).toBeUndefined();
  });

  it('counts every failure on a bearer board against its one token, from any address', async () => {
    const board = await startBoard({
      connection: redis,
      keys: keyLayout(prefix),
      config: testConfig(),
      auth: { kind: 'bearer', token: 't0ken-for-ops' },
      port: 0,
      failurePolicy: { maxFailuresPerUser: 2 },
    });
    boards.push(board);
    const url = new URL('api/queues', board.url).toString();
    expect((await ask(url, { authorization: 'Bearer guess-1', localAddress: '127.0.0.30' })).status).toBe(401);
    expect((await ask(url, { authorization: basic(USER, 'guess-2'), localAddress: '127.0.0.31' })).status).toBe(401);
    const locked = await ask(url, { authorization: 'Bearer t0ken-for-ops', localAddress: '127.0.0.32' });
    expect(locked.status).toBe(429);
  });

  it("logs an IPv6 client's /64 network, never its address", async () => {
    const log = capturedLogger();
    const board = await startBoard({
      connection: redis,
      keys: keyLayout(prefix),
      config: testConfig(),
      auth: { kind: 'basic', user: USER, password: PASSWORD },
      host: '::1',
      port: 0,
      failurePolicy: { maxFailuresPerAddress: 1 },
      logger: log.logger,
    });
    boards.push(board);
    expect(board.url).toMatch(/^http:\/\/\[::1\]:\d+\/$/);
    expect((await ask(board.url, { authorization: basic(USER, 'nope') })).status).toBe(401);
    expect((await ask(board.url, { authorization: RIGHT })).status).toBe(429);
    expect(log.records().map((record) => [record.msg, record.address, record.scope])).toEqual([
      ['board sign-in locked out', '0:0:0:0:*', 'address'],
      ['board sign-in refused while locked out', '0:0:0:0:*', 'address'],
    ]);
  });
});

describe('crawlfleet board lock-out settings', () => {
  const prefix = uniquePrefix('board-lockout-cli');
  let child: ChildProcess | undefined;

  afterAll(async () => {
    if (child !== undefined && child.exitCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
    const redis = openTestRedis();
    await cleanupPrefix(redis, prefix);
    redis.disconnect();
  });

  it('refuses a malformed lock-out setting in one line, naming the variable', async () => {
    const result = await runCli(['board', '--port', '1'], {
      env: {
        CRAWLFLEET_BOARD_USER: USER,
        CRAWLFLEET_BOARD_PASSWORD: PASSWORD,
        CRAWLFLEET_BOARD_TOKEN: undefined,
        CRAWLFLEET_BOARD_LOCKOUT_WINDOW: 'soon',
      },
      timeoutMs: 10_000,
    });
    expect(result.code).toBe(2);
    expect(result.stderr.trim()).toBe(
      'crawlfleet: CRAWLFLEET_BOARD_LOCKOUT_WINDOW must look like 90s, 30m, 12h, 7d or 2w, got "soon"',
    );
    const zero = await runCli(['board', '--port', '1'], {
      env: {
        CRAWLFLEET_BOARD_USER: USER,
        CRAWLFLEET_BOARD_PASSWORD: PASSWORD,
        CRAWLFLEET_BOARD_MAX_FAILURES_PER_ADDRESS: '0',
      },
      timeoutMs: 10_000,
    });
    expect(zero.code).toBe(2);
    expect(zero.stderr.trim()).toBe(
      'crawlfleet: CRAWLFLEET_BOARD_MAX_FAILURES_PER_ADDRESS must be a whole number from 1, got "0"',
    );
  });

  it('takes its limits from the environment and logs a lock-out as a JSON warning', async () => {
    const port = await freePort();
    child = spawn(process.execPath, [CLI_PATH, 'board', '--port', String(port)], {
      env: childEnv({
        CRAWLFLEET_PREFIX: prefix,
        CRAWLFLEET_BOARD_USER: USER,
        CRAWLFLEET_BOARD_PASSWORD: PASSWORD,
        CRAWLFLEET_BOARD_TOKEN: undefined,
        CRAWLFLEET_BOARD_MAX_FAILURES_PER_ADDRESS: '2',
        CRAWLFLEET_BOARD_MAX_FAILURES_PER_USER: '50',
        CRAWLFLEET_BOARD_LOCKOUT_WINDOW: '2m',
        CRAWLFLEET_LOG_LEVEL: 'info',
      }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr?.on('data', (chunk) => {
      stderr += chunk;
    });
    await waitFor(() => stderr.includes('board on '), { what: 'the board to start' });
    const url = `http://127.0.0.1:${port}/api/queues`;
    expect((await ask(url, { authorization: basic(USER, 'one') })).status).toBe(401);
    expect((await ask(url, { authorization: basic(USER, 'two') })).status).toBe(401);
    const locked = await ask(url, { authorization: RIGHT });
    expect(locked.status).toBe(429);
    expect(Number(locked.headers['retry-after'])).toBeGreaterThan(100);
    const line = await waitFor(() => stdout.split('\n').find((text) => text.includes('board sign-in locked out')), {
      what: 'the lock-out log line',
    });
    expect(JSON.parse(line)).toMatchObject({ level: 40, scope: 'address', user: USER, failures: 2 });
    expect(stdout).not.toContain(PASSWORD);
  });
});
