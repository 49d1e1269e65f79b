import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { Redis } from 'ioredis';

/** Finds an executable on PATH, like `which`. */
export function findOnPath(command: string, path: string = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return undefined;
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** True when a Redis answers PING at `url` within `timeoutMs`. */
export async function redisAnswers(url: string, timeoutMs = 1_000): Promise<boolean> {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  redis.on('error', () => {});
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

export interface RedisServerOptions {
  /** The `redis-server` binary; found on PATH by default. */
  binary?: string;
  /** Keep an append-only file (for restart tests). Off by default. */
  appendOnly?: boolean;
  /** Reuse this directory (and port) to restart a server on its own data. */
  dir?: string;
  port?: number;
  /** More `redis-server` arguments, after the defaults (e.g. `--cluster-enabled yes`). */
  args?: readonly string[];
}

/** A `redis-server` this process started, on 127.0.0.1, in its own directory. */
export interface RedisServer {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** Stops the server; removes its directory unless `keepDir`. */
  stop(options?: { keepDir?: boolean; signal?: NodeJS.Signals }): Promise<void>;
}

/** Starts a private `redis-server` and waits until it answers. */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const binary = options.binary ?? findOnPath('redis-server');
  if (binary === undefined) throw new Error('redis-server is not on PATH');
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'crawlfleet-redis-'));
  const port = options.port ?? (await freePort());
  const logfile = join(dir, 'redis.log');
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--logfile', logfile, '--save', ''].concat(
    options.appendOnly ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'],
    options.args ?? [],
  );
  // Its own process group: a Ctrl-C in the terminal goes to the crawl, which still needs this
  // Redis to drain and write what is done; the server stops when its owner stops it or exits.
  const child: ChildProcess = spawn(binary, args, { stdio: 'ignore', detached: true });
  const killOnExit = () => child.kill('SIGTERM');
  process.on('exit', killOnExit);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      process.off('exit', killOnExit);
      resolve();
    }),
  );
  let early: Error | undefined;
  child.once('error', (error) => {
    early = error;
  });
  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  while (!(await redisAnswers(url, 500))) {
    if (early !== undefined || child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      let log = '';
      try {
        log = readFileSync(logfile, 'utf8').trim().split('\n').slice(-3).join(' | ');
      } catch {}
      if (options.dir === undefined) rmSync(dir, { recursive: true, force: true });
      throw new Error(`redis-server did not start on port ${port}: ${early?.message ?? log ?? 'no answer'}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url,
    port,
    dir,
    async stop({ keepDir = false, signal = 'SIGTERM' } = {}) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        await exited;
      }
      if (!keepDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
