import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DEFAULT_CHROMIUM } from '@crawlfleet/browser';
import { freePort } from '@crawlfleet/local-redis';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import {
  cleanupPrefix,
  keyLayout,
  openTestRedis,
  REDIS_URL,
  TEST_KEYS,
  uniquePrefix,
  waitFor,
} from '../src/harness.js';
import { soleShard } from '../src/shard.js';

/*
 * No Docker engine runs on the machines this project is built on, so the image itself is never
 * built here. This rehearses its runtime stage instead, read from infra/Dockerfile: the files it
 * copies from the build stage (this checkout, built), its RUN (the production install, from npm's
 * cache where it can), its ENV and its CMD. What it proves: the production dependencies are enough
 * for the worker, the CLI and the board, none of the development tools come along, and the CMD
 * runs a worker that crawls. The browser-worker stage is rehearsed on top of it with this
 * machine's Debian Chromium standing in for its apt-get install: its ENV and CMD give a browser
 * worker that renders. What only a real build can prove (the base image, USER node, the build
 * stage's own install, the apt-get install) it does not.
 */

const root = fileURLToPath(new URL('../../', import.meta.url));
const run = promisify(execFile);

interface Stage {
  /** What the stage starts from: an image, or an earlier stage's name. */
  from: string;
  workdir: string;
  env: Record<string, string>;
  /** COPY --from=build: the sources (paths in the build stage) and the destination. */
  copies: Array<{ from: string[]; to: string }>;
  runs: string[];
  cmd: string[];
}

/** A stage of the Dockerfile: the instructions from `FROM ... AS <name>` to the next FROM. */
function stageOf(dockerfile: string, name: string): Stage {
  // Continuation lines joined, comments dropped.
  const lines = dockerfile
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const start = lines.findIndex((line) => new RegExp(`^FROM \\S+ AS ${name}$`, 'i').test(line));
  if (start < 0) throw new Error(`infra/Dockerfile has no ${name} stage`);
  const stage: Stage = {
    from: String(lines[start]?.split(' ')[1]),
    workdir: '',
    env: {},
    copies: [],
    runs: [],
    cmd: [],
  };
  for (const line of lines.slice(start + 1)) {
    const [instruction, ...rest] = line.split(' ');
    const args = rest.join(' ');
    if (instruction === 'FROM') break;
    if (instruction === 'WORKDIR') stage.workdir = args;
    else if (instruction === 'ENV')
      for (const pair of args.split(/\s+/)) {
        const [name, value] = pair.split('=');
        if (name !== undefined && value !== undefined) stage.env[name] = value;
      }
    else if (instruction === 'COPY') {
      const [flag, ...paths] = rest;
      if (flag !== '--from=build' || paths.length < 2) throw new Error(`a COPY not from the build stage: ${line}`);
      stage.copies.push({ from: paths.slice(0, -1), to: paths.at(-1) as string });
    } else if (instruction === 'RUN') stage.runs.push(args);
    else if (instruction === 'CMD') stage.cmd = JSON.parse(args) as string[];
  }
  return stage;
}

/** Runs node in the staged image folder; `output()` is everything it printed so far. */
function startInImage(cwd: string, args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let printed = '';
  const keep = (chunk: Buffer) => {
    printed += chunk.toString();
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return { child, output: () => printed };
}

describe("the image's runtime stage, rehearsed without a Docker engine", () => {
  const dockerfile = readFileSync(join(root, 'infra/Dockerfile'), 'utf8');
  const stage = stageOf(dockerfile, 'runtime');
  const browserStage = stageOf(dockerfile, 'browser-worker');
  const prefix = uniquePrefix('image');
  let app: string;
  let dir: string;
  let site: FixtureSite;
  let redis: Redis;
  let env: Record<string, string>;
  let worker: ChildProcess | undefined;
  let browserWorker: ChildProcess | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-image-'));
    app = join(dir, 'app');
    mkdirSync(app);
    // The build stage's /app is this checkout, built: its sources, lock and dist folders, without
    // anything installed.
    const skip = (path: string) => /(^|\/)(node_modules|\.turbo)(\/|$)/.test(path.slice(root.length));
    for (const { from, to } of stage.copies) {
      for (const path of from) {
        // As Docker copies: into a folder when the destination ends with a slash, else onto it.
        const source = join(root, path.replace(/^\/app\/?/, ''));
        const dest = to.endsWith('/') ? join(app, to, basename(source)) : join(app, to);
        mkdirSync(dirname(dest), { recursive: true });
        cpSync(source, dest, { recursive: true, filter: (file) => !skip(file) });
      }
    }
    for (const command of stage.runs) {
      // The machine's npm cache serves what it holds; the image's own cache clean is left out, so
      // the test does not empty the cache of the machine it runs on.
      const install = command.replace(/\s*&&\s*npm cache clean --force/, '');
      expect(install).not.toContain('cache clean');
      await run('sh', ['-c', install], {
        cwd: app,
        env: { ...process.env, npm_config_prefer_offline: 'true', npm_config_update_notifier: 'false' },
        maxBuffer: 16 * 1024 * 1024,
        timeout: 240_000,
      });
    }
    site = await startFixtureSite();
    redis = openTestRedis();
    const config = join(dir, 'crawlfleet.config.json');
    writeFileSync(config, JSON.stringify({ tenants: { default: { allowHosts: ['127.0.0.1'] } } }));
    env = {
      PATH: process.env.PATH ?? '',
      HOME: dir,
      ...stage.env,
      CRAWLFLEET_METRICS_PORT: String(await freePort()),
      REDIS_URL,
      CRAWLFLEET_PREFIX: prefix,
      CRAWLFLEET_KEYS: TEST_KEYS,
      CRAWLFLEET_CONFIG: config,
    };
  }, 300_000);

  afterAll(async () => {
    for (const child of [worker, browserWorker]) {
      if (child !== undefined && child.exitCode === null) {
        child.kill('SIGKILL');
        await once(child, 'exit');
      }
    }
    await cleanupPrefix(redis, prefix);
    redis.disconnect();
    await site?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('installs production dependencies only: no compiler, test runner, linter, build tool or browser', () => {
    expect(existsSync(join(app, 'node_modules/bullmq'))).toBe(true);
    for (const tool of [
      'typescript',
      'vitest',
      '@biomejs/biome',
      'turbo',
      '@vitest/runner',
      'playwright',
      '@playwright/test',
    ])
      expect(existsSync(join(app, 'node_modules', tool)), tool).toBe(false);
    // The worker drives Chromium through playwright-core, a library that brings no browser of its own;
    // only the browser-worker stage installs one.
    expect(existsSync(join(app, 'node_modules/playwright-core'))).toBe(true);
    expect(existsSync(join(app, 'node_modules/playwright-core/.local-browsers'))).toBe(false);
    expect(stage.runs.join('\n')).not.toMatch(/chromium/);
  });

  it("runs the CMD as a worker that answers /healthz and crawls what the image's CLI submits", async () => {
    const [command, ...args] = stage.cmd;
    expect(command).toBe('node');
    const started = startInImage(app, args, env);
    worker = started.child;
    const output = started.output;
    await waitFor(
      async () => {
        if (worker?.exitCode !== null) throw new Error(`the worker exited: ${output()}`);
        const res = await fetch(`http://127.0.0.1:${env.CRAWLFLEET_METRICS_PORT}/healthz`).catch(() => undefined);
        return res?.status === 200;
      },
      { timeoutMs: 20_000, what: `/healthz of the image's worker: ${output()}` },
    );

    const urls = [1, 2, 3].map((n) => site.url(`/ok/image-${n}`));
    const submitted = await run(process.execPath, ['apps/cli/dist/main.js', 'submit', ...urls, '--json'], {
      cwd: app,
      env,
    });
    expect(JSON.parse(submitted.stdout)).toEqual({ enqueued: 3, duplicates: 0 });
    const keys = keyLayout(prefix);
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === 3, {
      timeoutMs: 20_000,
      what: `3 results: ${output()}`,
    });
    for (const n of [1, 2, 3]) expect(site.hits(`/ok/image-${n}`)).toBe(1);
    worker.kill('SIGTERM');
    const [code] = await once(worker, 'exit');
    expect(code).toBe(0);
  });

  it("runs the browser-worker stage's CMD as a browser worker that renders what the image's CLI submits with --render", async () => {
    // The stage adds Debian's Chromium to the runtime image, where CRAWLFLEET_CHROMIUM says.
    expect(browserStage.from).toBe('runtime');
    expect(browserStage.runs.join('\n')).toMatch(/apt-get install -y --no-install-recommends chromium\b/);
    expect(browserStage.env.CRAWLFLEET_CHROMIUM).toBe(DEFAULT_CHROMIUM);
    expect(Number(browserStage.env.CRAWLFLEET_BROWSERS)).toBeGreaterThan(0);
    const [command, ...args] = browserStage.cmd;
    expect(command).toBe('node');
    const started = startInImage(app, args, {
      ...env,
      ...browserStage.env,
      CRAWLFLEET_METRICS_PORT: String(await freePort()),
    });
    browserWorker = started.child;
    const output = started.output;

    const url = site.url('/js/set-cookie?name=image&value=1');
    const submitted = await run(process.execPath, ['apps/cli/dist/main.js', 'submit', url, '--render', '--json'], {
      cwd: app,
      env,
    });
    expect(JSON.parse(submitted.stdout)).toEqual({ enqueued: 1, duplicates: 0 });
    const keys = keyLayout(prefix);
    const rendered = await waitFor(
      async () => {
        if (browserWorker?.exitCode !== null) throw new Error(`the browser worker exited: ${output()}`);
        const entries = await redis.xrange(soleShard(keys).results, '-', '+');
        const pages = entries.map(
          ([, fields]) => JSON.parse(String(fields[1])) as { url: string; rendered?: boolean; body: string },
        );
        return pages.find((page) => page.url === url);
      },
      { timeoutMs: 30_000, what: `the rendered page: ${output()}` },
    );
    expect(rendered.rendered).toBe(true);
    // What the page's script wrote: Chromium ran it.
    expect(rendered.body).toContain('set image');
    browserWorker.kill('SIGTERM');
    const [code] = await once(browserWorker, 'exit');
    expect(code).toBe(0);
  });

  it("starts the image's board, which asks for credentials", async () => {
    const port = await freePort();
    const { child: board, output: printed } = startInImage(app, ['apps/board/dist/main.js'], {
      ...env,
      CRAWLFLEET_BOARD_PORT: String(port),
      CRAWLFLEET_BOARD_TOKEN: 'image-token-1234567890',
    });
    try {
      const status = await waitFor(
        async () => {
          if (board.exitCode !== null) throw new Error(`the board exited: ${printed()}`);
          return (await fetch(`http://127.0.0.1:${port}/`).catch(() => undefined))?.status;
        },
        { timeoutMs: 20_000, what: `the board: ${printed()}` },
      );
      expect(status).toBe(401);
      const authorized = await fetch(`http://127.0.0.1:${port}/`, {
        headers: { authorization: 'Bearer image-token-1234567890' },
      });
      expect(authorized.status).toBe(200);
    } finally {
      board.kill('SIGKILL');
      await once(board, 'exit');
    }
  });
});
