#!/usr/bin/env node
/**
 * `npm run demo`: crawls the local fixture site with the real `crawlfleet crawl`, so a new
 * machine can see a whole crawl (pages, a retry, a redirect, a 404 in the DLQ) with no network.
 * Uses REDIS_URL, else the Redis on 127.0.0.1:6379, else a private redis-server it starts.
 *
 * It leaves its results file and nothing else: its keys go under a prefix of its own
 * (`cf-demo-<random>`), removed at the end, and its session key is made for the run, so no key
 * file is created. With CRAWLFLEET_PREFIX set, the keys stay under that prefix to be looked at.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { generateKeyEntry } from '@crawlfleet/slates';
import { Redis } from 'ioredis';
import { startFixtureSite } from './fixture/site.js';
import { CLI_PATH, cleanupPrefix } from './harness.js';

const site = await startFixtureSite();
const dir = mkdtempSync(join(tmpdir(), 'crawlfleet-demo-'));
const config = join(dir, 'crawlfleet.config.json');
// The fixture listens on loopback, which crawlfleet refuses unless a tenant allows it.
writeFileSync(
  config,
  JSON.stringify({ tenants: { default: { allowHosts: ['127.0.0.1'] } }, jobs: { backoffBaseMs: 200 } }),
);
const out = resolve('crawlfleet-demo-results.jsonl');
const keep = process.env.CRAWLFLEET_PREFIX;
const prefix = keep || `cf-demo-${randomBytes(4).toString('hex')}`;
const urls = [
  ...Array.from({ length: 20 }, (_, i) => site.url(`/ok/demo-${i}`)),
  site.url('/redirect-chain/2'),
  site.url('/flaky/demo?fails=1'),
  site.url('/cookies/set?theme=dark'),
  site.url('/status/404'),
];
process.stderr.write(`fixture site on ${site.origin}; crawling ${urls.length} URLs\n`);
const child = spawn(process.execPath, [CLI_PATH, '--config', config, 'crawl', '--out', out, ...urls], {
  stdio: 'inherit',
  env: {
    ...process.env,
    CRAWLFLEET_PREFIX: prefix,
    CRAWLFLEET_KEYS: process.env.CRAWLFLEET_KEYS || generateKeyEntry(),
  },
});
// Ctrl-C reaches the crawl too (one process group): the demo waits for it to drain and exit,
// then removes its keys and closes the site. A SIGTERM to the demo alone is passed on.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => child.kill('SIGTERM'));
const [code] = await once(child, 'exit');
await site.close();
rmSync(dir, { recursive: true, force: true });
if (keep) process.stderr.write(`its keys stay under CRAWLFLEET_PREFIX=${keep}\n`);
else {
  await removeKeys(prefix);
  // The crawl's summary points at its DLQ; the demo has just removed it.
  process.stderr.write(
    'the demo removed its Redis keys (the DLQ too); run it with CRAWLFLEET_PREFIX=demo to keep them and look\n',
  );
}
process.exitCode = typeof code === 'number' ? code : 1;

/**
 * Deletes the run's keys from the Redis the crawl used. A private redis-server (nothing answered
 * at REDIS_URL or 127.0.0.1:6379) already stopped with the crawl, taking them along.
 */
async function removeKeys(name: string): Promise<void> {
  const redis = new Redis(process.env.REDIS_URL || 'redis://127.0.0.1:6379', {
    lazyConnect: true,
    connectTimeout: 1_000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  redis.on('error', () => {});
  try {
    await redis.connect();
  } catch {
    return;
  }
  try {
    await cleanupPrefix(redis, name);
  } finally {
    redis.disconnect();
  }
}
