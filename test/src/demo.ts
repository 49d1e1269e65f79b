#!/usr/bin/env node
/**
 * `npm run demo`: crawls the local fixture site with the real `crawlfleet crawl`, so a new
 * machine can see a whole crawl (pages, a retry, a redirect, a 404 in the DLQ) with no network.
 * Uses REDIS_URL, else the Redis on 127.0.0.1:6379, else a private redis-server it starts; keys
 * go under the prefix `cf-demo` (CRAWLFLEET_PREFIX) so they stay apart from real crawls.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startFixtureSite } from './fixture/site.js';
import { CLI_PATH } from './harness.js';

const site = await startFixtureSite();
const dir = mkdtempSync(join(tmpdir(), 'crawlfleet-demo-'));
const config = join(dir, 'crawlfleet.config.json');
// The fixture listens on loopback, which crawlfleet refuses unless a tenant allows it.
writeFileSync(
  config,
  JSON.stringify({ tenants: { default: { allowHosts: ['127.0.0.1'] } }, jobs: { backoffBaseMs: 200 } }),
);
const out = resolve('crawlfleet-demo-results.jsonl');
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
  env: { ...process.env, CRAWLFLEET_PREFIX: process.env.CRAWLFLEET_PREFIX ?? 'cf-demo' },
});
const [code] = await once(child, 'exit');
await site.close();
rmSync(dir, { recursive: true, force: true });
process.exitCode = typeof code === 'number' ? code : 1;
