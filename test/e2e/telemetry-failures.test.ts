import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { cleanupPrefix, keyLayout, openTestRedis, runCli, uniquePrefix, waitFor } from '../src/harness.js';
import { startWorkerProcess } from '../src/processes.js';
import { soleShard } from '../src/shard.js';

/** A port on 127.0.0.1 that nothing listens on: connections to it are refused. */
async function refusingEndpoint(): Promise<string> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return `http://127.0.0.1:${port}`;
}

/** A collector that accepts connections and never answers them. */
interface HangingCollector {
  readonly endpoint: string;
  /** Connections it has accepted so far. */
  accepted(): number;
  close(): Promise<void>;
}

async function startHangingCollector(): Promise<HangingCollector> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server: Server = createServer((socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    accepted: () => accepted,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** The lines of a process's output that are about exporting to `endpoint`. */
function exporterLines(output: string, endpoint: string): string[] {
  return output.split('\n').filter((line) => line.includes(endpoint) || /export/i.test(line));
}

/** What an uncaught error or a printed stack trace leaves in a process's output. */
const STACK_TRACE = /^\s+at |triggerUncaughtException|^\w*Error: /m;

describe('telemetry export to a collector that is down or hangs', () => {
  let site: FixtureSite;
  let redis: Redis;
  let dir: string;
  let config: string;
  let refusing: string;
  let hanging: HangingCollector;
  const prefixes: string[] = [];

  /** The environment of one test: its own key prefix, and `endpoint` as the collector (none without it). */
  function envFor(label: string, endpoint?: string, extra: Record<string, string> = {}) {
    const prefix = uniquePrefix(label);
    prefixes.push(prefix);
    const env: Record<string, string> = { CRAWLFLEET_PREFIX: prefix, CRAWLFLEET_CONFIG: config, ...extra };
    if (endpoint !== undefined) env.OTEL_EXPORTER_OTLP_ENDPOINT = endpoint;
    return { env, keys: keyLayout(prefix) };
  }

  beforeAll(async () => {
    site = await startFixtureSite();
    redis = openTestRedis();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-otel-down-'));
    config = join(dir, 'crawlfleet.config.json');
    writeFileSync(config, JSON.stringify({ tenants: { default: { allowHosts: ['127.0.0.1'], robots: 'ignore' } } }));
    refusing = await refusingEndpoint();
    hanging = await startHangingCollector();
  });
  afterAll(async () => {
    await hanging.close();
    for (const prefix of prefixes) await cleanupPrefix(redis, prefix);
    redis.disconnect();
    await site.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs `submit --json` and times it, from spawning the process to its exit. */
  async function timedSubmit(env: Record<string, string>, urls: string[]) {
    const started = Date.now();
    const result = await runCli(['submit', '--json', ...urls], { env });
    return { result, took: Date.now() - started };
  }

  for (const collector of ['refuses connections', 'accepts and never answers'] as const) {
    it(`submit enqueues and exits 0 when the collector ${collector}, at most its 2 s flush bound later, saying so in one short line`, async () => {
      const endpoint = collector === 'refuses connections' ? refusing : hanging.endpoint;
      const accepted = hanging.accepted();
      // The same submit without telemetry, timed on this machine under its load of the moment.
      const baseline = await timedSubmit(envFor('otel-baseline').env, [site.url('/ok/1'), site.url('/ok/2')]);
      expect(baseline.result.code, baseline.result.stderr).toBe(0);

      const { env, keys } = envFor('otel-submit', endpoint);
      const { result, took } = await timedSubmit(env, [site.url('/ok/1'), site.url('/ok/2')]);

      expect(result.code, result.stderr).toBe(0);
      expect(JSON.parse(result.stdout)).toEqual({ enqueued: 2, duplicates: 0 });
      expect(await redis.llen(`${keys.bullPrefix}:crawl:wait`)).toBe(2);
      if (collector === 'accepts and never answers') {
        // It did try: the submit span went to the collector, which held on to it.
        expect(hanging.accepted()).toBeGreaterThan(accepted);
      }
      expect(result.stderr).not.toMatch(STACK_TRACE);
      const lines = result.stderr.split('\n').filter((line) => line !== '');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(endpoint);
      expect(lines[0]?.length).toBeLessThan(200);
      // The exporter alone would wait 8 s (refused, with its retries) or 10 s (no answer).
      expect(took - baseline.took).toBeLessThan(4_000);
    });
  }

  for (const collector of ['refuses connections', 'never answers'] as const) {
    it(`a worker keeps crawling while the collector ${collector}, reports it once, and exits 0 on SIGTERM within 6 s`, async () => {
      const endpoint = collector === 'refuses connections' ? refusing : hanging.endpoint;
      // Spans go out every 100 ms, so exports fail while the worker crawls, not only at shutdown.
      const { env, keys } = envFor('otel-worker', endpoint, { OTEL_BSP_SCHEDULE_DELAY: '100' });
      const { results } = soleShard(keys);
      const worker = startWorkerProcess(env, ['--concurrency', '4']);
      try {
        const first = Array.from({ length: 5 }, (_, i) => site.url(`/ok/a${i}`));
        expect((await runCli(['submit', ...first], { env })).code).toBe(0);
        await waitFor(async () => (await redis.xlen(results)) === 5, { what: 'the first five pages' });
        // The first failed export is reported (after the exporter's own retries and timeout) ...
        await waitFor(() => exporterLines(worker.output(), endpoint).length > 0, {
          timeoutMs: 20_000,
          what: 'the line about the failed export',
        });
        // ... and the worker goes on crawling.
        const second = Array.from({ length: 5 }, (_, i) => site.url(`/ok/b${i}`));
        expect((await runCli(['submit', ...second], { env })).code).toBe(0);
        await waitFor(async () => (await redis.xlen(results)) === 10, { what: 'the next five pages' });
        expect(worker.child.exitCode).toBeNull();

        const signalled = Date.now();
        const code = await worker.stop('SIGTERM');
        expect(code, worker.output()).toBe(0);
        // Drained at once (no job running), then at most the 2 s flush bound.
        expect(Date.now() - signalled).toBeLessThan(6_000);
        expect(worker.output()).toContain('worker stopped');
        expect(worker.output()).not.toMatch(STACK_TRACE);
        expect(exporterLines(worker.output(), endpoint)).toHaveLength(1);
      } finally {
        await worker.stop('SIGKILL');
      }
    });
  }
});
