import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { type ForwardProxy, startForwardProxy } from '../src/forward-proxy.js';
import { cleanupPrefix, keyLayout, openTestRedis, runCli, uniquePrefix, waitFor } from '../src/harness.js';
import { startWorkerProcess, type WorkerProcess } from '../src/processes.js';
import { soleShard } from '../src/shard.js';

interface Echo {
  headers: Record<string, string>;
}

/** Render jobs from the command line: `submit --render`, `worker --browsers N`, `status`, `sessions show`. */
describe('render jobs from the command line', () => {
  const prefix = uniquePrefix('render-cli');
  const keys = keyLayout(prefix);
  let redis: Redis;
  let site: FixtureSite;
  let forward: ForwardProxy;
  let dir: string;
  let env: Record<string, string>;
  let workers: WorkerProcess[] = [];

  beforeAll(async () => {
    redis = openTestRedis();
    site = await startFixtureSite();
    forward = await startForwardProxy();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-render-cli-'));
    const config = join(dir, 'crawlfleet.config.json');
    writeFileSync(
      config,
      JSON.stringify({
        tenants: {
          default: { allowHosts: ['127.0.0.1'] },
          // Sessions with a browser's header profile, through a proxy.
          shop: {
            allowHosts: ['127.0.0.1'],
            robots: 'ignore',
            identity: { profile: 'browser', browsers: ['chrome'] },
            proxy: { urls: [forward.url] },
          },
          // A tenant header, which only the job's own host may see.
          headed: {
            allowHosts: ['127.0.0.1'],
            robots: 'ignore',
            headers: { 'x-team': 'crawl' },
            proxy: { urls: [forward.url] },
          },
        },
        jobs: { retries: 1, backoffBaseMs: 50, backoffMaxMs: 200 },
      }),
    );
    env = { CRAWLFLEET_PREFIX: prefix, CRAWLFLEET_CONFIG: config };
  });
  afterEach(async () => {
    await Promise.all(workers.map((worker) => worker.stop()));
    workers = [];
  });
  afterAll(async () => {
    await cleanupPrefix(redis, prefix);
    redis.disconnect();
    await Promise.all([site.close(), forward.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  async function results(): Promise<Array<{ url: string; body: string; rendered?: boolean }>> {
    const entries = await redis.xrange(soleShard(keys).results, '-', '+');
    return entries.map(([, fields]) => JSON.parse(String(fields[1])));
  }

  it('a worker asked for browsers without a usable Chromium exits 2 with one line, taking nothing', async () => {
    const worker = startWorkerProcess({ ...env, CRAWLFLEET_CHROMIUM: join(dir, 'no-chromium') }, ['--browsers', '2']);
    workers.push(worker);
    const code = await new Promise<number | null>((resolve) => worker.child.once('exit', resolve));
    expect(code).toBe(2);
    const lines = worker.output().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/no usable Chromium: .*no-chromium does not exist; install Debian's chromium/);
  });

  it('render jobs wait on their own queue for a browser worker; status shows them', async () => {
    const submitted = await runCli(['submit', '--render', site.url('/js/set-cookie?name=q&value=1')], { env });
    expect(submitted.code).toBe(0);
    const waiting = await runCli(['status', '--json'], { env });
    const status = JSON.parse(waiting.stdout) as { counts: { waiting: number }; render: { waiting: number } };
    // HTTP workers never see it: it is on the render queue.
    expect(status.render.waiting).toBe(1);
    expect(status.counts.waiting).toBe(0);
    expect((await runCli(['status'], { env })).stdout).toMatch(/render queue \(browser workers.*\): 1 waiting/);
    const refused = await runCli(['submit', '--render', '-X', 'POST', site.url('/echo')], { env });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/a render job loads a page in a browser: GET only, not POST/);

    workers.push(startWorkerProcess(env, ['--browsers', '2']));
    const [page] = await waitFor(async () => ((await results()).length > 0 ? results() : undefined), {
      timeoutMs: 30_000,
      what: 'the render job to be stored',
    });
    expect(page).toMatchObject({ rendered: true });
    expect(page?.body).toContain('set q');
  });

  it('a dead-lettered render job is replayed onto the render queue, for a browser worker', async () => {
    const worker = startWorkerProcess(env, ['--browsers', '1']);
    workers.push(worker);
    const missing = site.url('/status/404?render=replay');
    expect((await runCli(['submit', '--render', missing], { env })).code).toBe(0);
    await waitFor(async () => (await runCli(['dlq', 'list', '--json'], { env })).stdout.includes(missing), {
      timeoutMs: 30_000,
      what: 'the dead letter',
    });
    await worker.stop();
    const replayed = await runCli(['dlq', 'replay', '--all', '--json'], { env });
    expect(JSON.parse(replayed.stdout).replayed).toHaveLength(1);
    const status = JSON.parse((await runCli(['status', '--json'], { env })).stdout) as {
      counts: { waiting: number };
      render: { waiting: number };
    };
    expect(status.render.waiting).toBe(1);
    expect(status.counts.waiting).toBe(0);
    await redis.del(`${keys.bullPrefix}:crawl-render:wait`);
  });

  it('crawl --render runs a handler on the open page: its clicks change the session, its records are stored once', async () => {
    const out = join(dir, 'clicked.jsonl');
    const handler = fileURLToPath(new URL('../src/fixture/handlers/click-price.mjs', import.meta.url));
    const crawled = await runCli(
      ['crawl', '--json', '--render', '--session', 'H', '--handler', handler, '--out', out, site.url('/js/button')],
      { env, timeoutMs: 60_000 },
    );
    expect(crawled.code, crawled.stderr).toBe(0);
    expect(JSON.parse(crawled.stdout)).toMatchObject({ fetched: 2, dlq: 0, left: 0 });
    const lines = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map(
        (line) =>
          JSON.parse(line) as { kind?: string; url?: string; data?: unknown; rendered?: boolean; status?: number },
      );
    // The handler clicked: the record holds what the page showed only after the click.
    expect(lines.filter((line) => line.kind === 'record').map((line) => line.data)).toEqual([
      { url: site.url('/js/button'), price: '42 EUR' },
      { url: site.url('/js/check?name=clicked&value=yes'), rendered: false },
    ]);
    // The cookie the click set went back to the session: the HTTP page the handler enqueued sent it.
    const check = lines.find((line) => line.url?.includes('/js/check'));
    expect(check).toMatchObject({ status: 200 });
    expect(check?.rendered).toBeUndefined();
    const shown = JSON.parse((await runCli(['sessions', 'show', 'H', '--json'], { env })).stdout) as {
      cookies: Array<{ name: string }>;
    };
    expect(shown.cookies.map((cookie) => cookie.name)).toContain('clicked');
  });

  it("a tenant's headers go with the page's own requests, never to the third parties it loads", async () => {
    workers.push(startWorkerProcess(env, ['--browsers', '1']));
    const third = `http://localhost:${new URL(site.origin).port}/ok/third-party`;
    const page = site.url(`/js/embed?src=${encodeURIComponent(third)}`);
    expect((await runCli(['submit', '--render', '--tenant', 'headed', page], { env })).code).toBe(0);
    await waitFor(async () => (await results()).find((result) => result.url === page), {
      timeoutMs: 30_000,
      what: 'the embedding page',
    });
    await waitFor(() => forward.headers.has(third), { what: 'the third party request' });
    expect(forward.headers.get(page)?.['x-team']).toBe('crawl');
    expect(forward.headers.get(third)?.['x-team']).toBeUndefined();
  });

  it("the browser's user agent and proxy for a session are the ones sessions show names", async () => {
    workers.push(startWorkerProcess(env, ['--browsers', '1']));
    const echo = site.url('/echo?render=identity');
    const storage = site.url('/js/storage?key=seen&value=yes');
    const submitted = await runCli(['submit', '--render', '--tenant', 'shop', '--session', 'P', echo, storage], {
      env,
    });
    expect(submitted.code).toBe(0);
    const page = await waitFor(async () => (await results()).find((result) => result.url === echo), {
      timeoutMs: 30_000,
      what: 'the echo page',
    });
    await waitFor(async () => (await results()).find((result) => result.url === storage), {
      timeoutMs: 30_000,
      what: 'the storage page',
    });
    const shown = await runCli(['sessions', 'show', 'P', '--tenant', 'shop', '--json'], { env });
    expect(shown.code).toBe(0);
    const session = JSON.parse(shown.stdout) as {
      proxy: string;
      profile: { userAgent: string };
      storage: Array<{ origin: string; items: number }>;
    };
    // The page's localStorage is kept for the session: sessions show names the origin, never values.
    expect(session.storage).toEqual([{ origin: site.origin, items: 1 }]);
    expect(shown.stdout).not.toContain('yes');
    const seen = JSON.parse(page.body) as Echo;
    // A browser's header profile, drawn for the session: the page saw exactly that agent.
    expect(session.profile.userAgent).toMatch(/Chrome\//);
    expect(seen.headers['user-agent']).toBe(session.profile.userAgent);
    // Through the proxy the profile names (the egress guard chains it), and no other way.
    expect(session.proxy).toBe(`http://127.0.0.1:${forward.port}`);
    expect(forward.forwarded).toContain(echo);
  });
});
