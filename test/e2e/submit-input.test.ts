import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CRAWL_QUEUE, parseFetchJob } from '@crawlfleet/core';
import { type RedisServer, startRedisServer } from '@crawlfleet/local-redis';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  type CliResult,
  cleanupPrefix,
  keyLayout,
  keysOf,
  openTestRedis,
  runCli,
  uniquePrefix,
  waitFor,
} from '../src/harness.js';

/** The most a job's URL may hold: the worker's schema refuses anything longer. */
const MAX_URL_LENGTH = 8192;
const BASE = 'http://127.0.0.1:8080/';

/** A URL whose serialized form (what the job carries) is exactly `length` characters. */
function urlOfLength(length: number): string {
  return `${BASE}${'a'.repeat(length - BASE.length)}`;
}

/** The lines a command wrote to stderr. */
function stderrLines(result: CliResult): string[] {
  return result.stderr.trimEnd().split('\n');
}

describe('crawlfleet submit, checking its input', () => {
  let redis: Redis;
  let dir: string;
  let prefix: string;
  let env: Record<string, string>;

  beforeAll(() => {
    redis = openTestRedis();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-submit-input-'));
    const config = join(dir, 'crawlfleet.config.json');
    writeFileSync(config, JSON.stringify({ tenants: { default: {}, shop: {} } }));
    env = { CRAWLFLEET_CONFIG: config };
  });
  afterAll(() => {
    redis.disconnect();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    prefix = uniquePrefix('submit-input');
    env = { ...env, CRAWLFLEET_PREFIX: prefix };
  });
  afterEach(async () => {
    await cleanupPrefix(redis, prefix);
  });

  function file(name: string, content: string | Buffer): string {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  }

  /** Runs `crawlfleet args`, expects exit code 2, nothing on stdout and nothing in Redis; returns stderr's lines. */
  async function refused(args: string[], input?: string): Promise<string[]> {
    const result = await runCli(args, { env, input });
    expect(result.stdout).toBe('');
    expect(result.code, result.stderr).toBe(2);
    expect(await keysOf(redis, prefix)).toEqual([]);
    return stderrLines(result);
  }

  async function waitingJobs() {
    const queue = new Queue(CRAWL_QUEUE, { connection: redis, prefix: keyLayout(prefix).bullPrefix });
    try {
      return await queue.getWaiting();
    } finally {
      await queue.close();
    }
  }

  describe('refuses at submit what a worker would refuse', () => {
    it(`refuses a URL longer than ${MAX_URL_LENGTH} characters with one line and exit 2`, async () => {
      const lines = await refused(['submit', urlOfLength(MAX_URL_LENGTH + 1)]);

      expect(lines).toEqual([`crawlfleet: url: longer than ${MAX_URL_LENGTH} characters`]);
    });

    it('names the line of a URL that is too long in a file', async () => {
      const urls = file('long.txt', `${BASE}ok\n# a comment\n${urlOfLength(10_000)}\n`);

      const lines = await refused(['submit', '--file', urls]);

      expect(lines).toEqual([
        `crawlfleet: ${urls} line 3: url: longer than ${MAX_URL_LENGTH} characters; nothing was enqueued`,
      ]);
    });

    it('measures the URL a job carries, percent-escapes included, not the text as typed', async () => {
      const typed = `${BASE}${'é'.repeat(2_000)}`;
      expect(typed.length).toBeLessThan(MAX_URL_LENGTH);

      const lines = await refused(['submit', typed]);

      expect(lines).toEqual([`crawlfleet: url: longer than ${MAX_URL_LENGTH} characters`]);
    });

    it('refuses a JSON line whose body is over the 1 MiB a job may hold', async () => {
      const target = { url: `${BASE}upload`, method: 'POST', body: 'x'.repeat(1024 * 1024 + 1) };
      const targets = file('body.jsonl', `${JSON.stringify(target)}\n`);

      const lines = await refused(['submit', '--file', targets]);

      expect(lines).toEqual([
        `crawlfleet: ${targets} line 1: body: longer than 1048576 characters; nothing was enqueued`,
      ]);
    });

    it('refuses a header that no HTTP client would send, naming its line', async () => {
      const targets = file(
        'headers.jsonl',
        [
          JSON.stringify({ url: `${BASE}1`, headers: { 'x-ok': 'yes' } }),
          JSON.stringify({ url: `${BASE}2`, headers: { 'x-note': 'one\r\nx-injected: two' } }),
        ].join('\n'),
      );

      const lines = await refused(['submit', '--file', targets]);

      expect(lines).toEqual([
        `crawlfleet: ${targets} line 2: headers.x-note: not a valid HTTP header value; nothing was enqueued`,
      ]);
    });

    it(`enqueues a URL of exactly ${MAX_URL_LENGTH} characters as a job the worker's schema accepts`, async () => {
      const url = urlOfLength(MAX_URL_LENGTH);

      const result = await runCli(['submit', '--json', url], { env });

      expect(result.code, result.stderr).toBe(0);
      expect(JSON.parse(result.stdout)).toEqual({ enqueued: 1, duplicates: 0 });
      const [job, ...rest] = await waitingJobs();
      expect(rest).toEqual([]);
      expect(job?.data.url).toBe(url);
      expect(parseFetchJob(job?.data)).toEqual({ ok: true, job: job?.data });
    });
  });

  describe('input files', () => {
    it('reports every bad line with its line number, comments and blank lines counted', async () => {
      const urls = file(
        'mixed.txt',
        [
          '# seed list',
          `${BASE}1`,
          '',
          'not a url',
          '# JSON targets',
          '{"url": 5}',
          `{"url":"${BASE}2","extra":true}`,
          '   ',
          'ftp://127.0.0.1/file',
          `{"url":"${BASE}3"`,
          `${BASE}4`,
        ].join('\n'),
      );

      const lines = await refused(['submit', '--file', urls]);

      expect(lines).toEqual([
        `crawlfleet: ${urls} line 4: not a valid absolute URL: "not a url"`,
        `crawlfleet: ${urls} line 6: url: Invalid input: expected string, received number`,
        `crawlfleet: ${urls} line 7: Unrecognized key: "extra"`,
        `crawlfleet: ${urls} line 9: only http and https URLs can be crawled, got ftp: "ftp://127.0.0.1/file"`,
        `crawlfleet: ${urls} line 10: not valid JSON`,
        'crawlfleet: 5 bad targets; nothing was enqueued',
      ]);
    });

    it('names the line of a single bad line among good ones', async () => {
      const urls = file('one-bad.txt', `# header\n\n${BASE}1\nhttp://[broken\n${BASE}2\n`);

      const lines = await refused(['submit', '--file', urls]);

      expect(lines).toEqual([
        `crawlfleet: ${urls} line 4: not a valid absolute URL: "http://[broken"; nothing was enqueued`,
      ]);
    });

    it('lists the first 20 bad lines, then says how many more there are', async () => {
      const content = Array.from({ length: 30 }, (_, i) => (i % 6 === 0 ? `${BASE}${i}` : `bad ${i + 1}`));
      const urls = file('many-bad.txt', content.join('\n'));

      const lines = await refused(['submit', '--file', urls]);

      const badLineNumbers = content.flatMap((line, i) => (line.startsWith('bad') ? [i + 1] : []));
      expect(badLineNumbers).toHaveLength(25);
      expect(lines).toEqual([
        ...badLineNumbers
          .slice(0, 20)
          .map((n) => `crawlfleet: ${urls} line ${n}: not a valid absolute URL: "bad ${n}"`),
        'crawlfleet: and 5 more',
        'crawlfleet: 25 bad targets; nothing was enqueued',
      ]);
    });

    it('reports the bad line of a file given with --key, rather than counting targets', async () => {
      const urls = file('keyed.jsonl', `# the one target\n{"url": "${BASE}order", "method": POST}\n`);

      const lines = await refused(['submit', '--key', 'order-42', '--file', urls]);

      expect(lines).toEqual([`crawlfleet: ${urls} line 2: not valid JSON; nothing was enqueued`]);
    });

    it('counts lines from stdin too', async () => {
      const lines = await refused(['submit', '--file', '-'], `# from a pipe\n${BASE}1\n\nnope\n`);

      expect(lines).toEqual(['crawlfleet: stdin line 4: not a valid absolute URL: "nope"; nothing was enqueued']);
    });

    it('refuses a binary file with one short line', async () => {
      const binary = Buffer.alloc(5_000);
      for (let i = 0; i < binary.length; i++) binary[i] = (i * 37) % 256;
      const data = file('data.bin', binary);

      const lines = await refused(['submit', '--file', data]);

      expect(lines).toHaveLength(1);
      expect(lines[0]).toBe(`crawlfleet: --file ${data} is not a text file (it holds NUL bytes)`);
      expect(lines[0]?.length).toBeLessThan(200);
    });

    it('refuses a file that is not UTF-8 text, naming the first line that is not', async () => {
      const latin1 = file('latin1.txt', Buffer.from(`${BASE}ok\n# caf\xe9\n${BASE}caf\xe9\n`, 'latin1'));

      const lines = await refused(['submit', '--file', latin1]);

      expect(lines).toEqual([`crawlfleet: --file ${latin1} is not UTF-8 text (line 2)`]);
    });

    it('reads a file that starts with a UTF-8 byte order mark', async () => {
      const urls = file('bom.txt', `\ufeff${BASE}bom\n`);

      const result = await runCli(['submit', '--json', '--file', urls], { env });

      expect(result.code, result.stderr).toBe(0);
      expect(JSON.parse(result.stdout)).toEqual({ enqueued: 1, duplicates: 0 });
      expect((await waitingJobs()).map((job) => job.data.url)).toEqual([`${BASE}bom`]);
    });

    it('says an empty file is empty', async () => {
      const empty = file('empty.txt', '');

      const lines = await refused(['submit', '--file', empty, `${BASE}given-too`]);

      expect(lines).toEqual([`crawlfleet: --file ${empty} is empty`]);
    });

    it('says an empty stdin is empty', async () => {
      const lines = await refused(['submit', '--file', '-'], '');

      expect(lines).toEqual(['crawlfleet: stdin is empty']);
    });

    it('says a file of only comments and blank lines names no targets', async () => {
      const comments = file('comments.txt', '# nothing yet\n\n   \n# still nothing\n');

      const lines = await refused(['submit', '--file', comments]);

      expect(lines).toEqual([`crawlfleet: --file ${comments} names no targets, only comments and blank lines`]);
    });
  });

  describe('error messages', () => {
    it.each([
      { args: ['submit', '--bogus'], message: "crawlfleet: unknown option '--bogus'" },
      { args: ['bogus'], message: "crawlfleet: unknown command 'bogus'" },
      { args: ['dlq', 'show'], message: "crawlfleet: missing required argument 'id'" },
      { args: ['submit', '--tenant'], message: "crawlfleet: option '-t, --tenant <name>' argument missing" },
    ])('prints usage errors of `crawlfleet $args` with the crawlfleet: prefix', async ({ args, message }) => {
      const lines = await refused(args);

      expect(lines[0]).toBe(message);
      expect(lines.filter((line) => line.startsWith('error:'))).toEqual([]);
    });

    it('prints input errors with the same prefix', async () => {
      const lines = await refused(['submit', '--tenant', 'site', `${BASE}1`]);

      expect(lines).toEqual([
        `crawlfleet: unknown tenant "site": config ${env.CRAWLFLEET_CONFIG} has tenants default, shop`,
      ]);
    });
  });
});

describe('crawlfleet submit when Redis goes away mid-way', () => {
  const TARGETS = 50_000;
  let server: RedisServer;
  let dir: string;

  beforeAll(async () => {
    // Append-only with fsync on every write: what Redis acknowledged survives the kill.
    server = await startRedisServer({ appendOnly: true });
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-submit-lost-'));
  });
  afterAll(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints one line without a stack trace, exits 1, and a re-run enqueues only what is missing', async () => {
    const urls = join(dir, 'urls.txt');
    writeFileSync(urls, Array.from({ length: TARGETS }, (_, i) => `${BASE}page/${i}`).join('\n'));
    const env = { REDIS_URL: server.url, CRAWLFLEET_PREFIX: 'lost' };
    const waitList = `${keyLayout('lost').bullPrefix}:${CRAWL_QUEUE}:wait`;
    const watcher = openTestRedis(server.url);
    watcher.on('error', () => {});

    const submitting = runCli(['submit', '--file', urls], { env, timeoutMs: 120_000 });
    await waitFor(async () => (await watcher.llen(waitList)) >= 2_000, { what: 'the submit under way' });
    watcher.disconnect();
    await server.stop({ keepDir: true, signal: 'SIGKILL' });
    const result = await submitting;

    expect(result.stdout).toBe('');
    expect(result.code).toBe(1);
    expect(result.stderr).not.toMatch(/^ {4}at /m);
    const lines = stderrLines(result);
    expect(lines).toHaveLength(1);
    const line = lines[0] ?? '';
    expect(line).toMatch(/^crawlfleet: submit interrupted after enqueuing \d+ of 50000 jobs \(0 duplicates\): /);
    expect(line).toContain('re-running the same submit is safe');
    const enqueued = Number(/after enqueuing (\d+) of/.exec(line)?.[1]);
    // Batch 5 is only sent once batch 4's reply is in: 2,000 in the wait list means 1,500 or more acknowledged.
    expect(enqueued).toBeGreaterThanOrEqual(1_500);
    expect(enqueued).toBeLessThan(TARGETS);

    server = await startRedisServer({ appendOnly: true, dir: server.dir, port: server.port });
    const again = await runCli(['submit', '--json', '--file', urls], { env, timeoutMs: 120_000 });

    expect(again.code, again.stderr).toBe(0);
    const report = JSON.parse(again.stdout) as { enqueued: number; duplicates: number };
    expect(report.duplicates).toBeGreaterThanOrEqual(enqueued);
    expect(report.enqueued + report.duplicates).toBe(TARGETS);
    const check = openTestRedis(server.url);
    try {
      expect(await check.llen(waitList)).toBe(TARGETS);
    } finally {
      check.disconnect();
    }
  });
});
