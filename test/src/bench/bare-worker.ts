#!/usr/bin/env node
/**
 * The fleet benchmark's baseline: the least a BullMQ worker can do per job, one got GET of the
 * job's URL, with nothing of crawlfleet around it. Run as its own process by `fleet.ts`, so its
 * RSS is its own. Keep-alive sockets, socket limit and BullMQ lock settings match what
 * `crawlfleet worker` uses, so the comparison measures crawlfleet's path and not a setting.
 *
 * Environment: REDIS_URL, BENCH_PREFIX (the BullMQ prefix), BENCH_QUEUE, BENCH_CONCURRENCY,
 * BENCH_MAX_SOCKETS, and BENCH_PROXY (a forward proxy every request goes through, with the agent
 * crawlfleet uses). Prints `ready` on stdout once the worker runs; drains on SIGTERM.
 */
import { Agent } from 'node:http';
import { Worker } from 'bullmq';
import { got } from 'got';
import { HttpProxyAgent } from 'http-proxy-agent';
import { Redis } from 'ioredis';

function setting(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') throw new Error(`bare-worker: ${name} is not set`);
  return value;
}

const connection = new Redis(setting('REDIS_URL'), { maxRetriesPerRequest: null });
const agentOptions = { keepAlive: true, maxSockets: Number(setting('BENCH_MAX_SOCKETS')), scheduling: 'lifo' as const };
const proxy = process.env.BENCH_PROXY;
const agent = proxy ? new HttpProxyAgent(proxy, agentOptions) : new Agent(agentOptions);
const worker = new Worker(
  setting('BENCH_QUEUE'),
  async (job) => {
    const response = await got((job.data as { url: string }).url, {
      agent: { http: agent },
      retry: { limit: 0 },
      throwHttpErrors: false,
      timeout: { request: 30_000 },
    });
    return { status: response.statusCode };
  },
  {
    connection,
    prefix: setting('BENCH_PREFIX'),
    concurrency: Number(setting('BENCH_CONCURRENCY')),
    lockDuration: 30_000,
    stalledInterval: 30_000,
    maxStalledCount: 2,
  },
);
worker.on('error', (error) => process.stderr.write(`bare-worker: ${error.message}\n`));
await worker.waitUntilReady();
process.stdout.write('ready\n');

process.once('SIGTERM', () => {
  void worker
    .close()
    .then(() => connection.quit())
    .finally(() => {
      agent.destroy();
      process.exit(0);
    });
});
