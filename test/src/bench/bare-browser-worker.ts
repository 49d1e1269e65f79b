#!/usr/bin/env node
/**
 * The render part's baseline: the least a BullMQ worker can do per render job, a fresh context
 * of one Chromium, the job's page loaded (`load`, 30 s, as a render job waits by default), its
 * rendered HTML read, the context closed; no session, no egress guard, no robots.txt, no result
 * written. Run as its own process by `rendering.ts`, so its RSS and Chromium are its own.
 * Chromium is launched as `@crawlfleet/browser` launches it (the same flags, sandbox and signal
 * settings); `rendering.ts` compares the two Chromium command lines of each run.
 *
 * Environment: REDIS_URL, BENCH_PREFIX (the BullMQ prefix), BENCH_QUEUE, BENCH_CONCURRENCY
 * (contexts open at once), BENCH_CHROMIUM (the binary). Launches Chromium, then prints `ready` on
 * stdout once the worker runs; drains on SIGTERM and closes the browser.
 */
import { CHROMIUM_ARGS } from '@crawlfleet/browser';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { chromium } from 'playwright-core';

/** What a render job waits for, as `render.timeoutMs` and `render.waitUntil` default. */
const TIMEOUT_MS = 30_000;

function setting(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') throw new Error(`bare-browser-worker: ${name} is not set`);
  return value;
}

const browser = await chromium.launch({
  executablePath: setting('BENCH_CHROMIUM'),
  headless: true,
  // The flags crawlfleet's browser workers start Chromium with: only the session path differs.
  args: [...CHROMIUM_ARGS],
  chromiumSandbox: process.getuid?.() !== 0,
  handleSIGINT: false,
  handleSIGTERM: false,
  handleSIGHUP: false,
});
const connection = new Redis(setting('REDIS_URL'), { maxRetriesPerRequest: null });
const worker = new Worker(
  setting('BENCH_QUEUE'),
  async (job) => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      page.setDefaultTimeout(TIMEOUT_MS);
      const response = await page.goto((job.data as { url: string }).url, { waitUntil: 'load', timeout: TIMEOUT_MS });
      const html = await page.content();
      return { status: response?.status() ?? 0, bytes: html.length };
    } finally {
      await context.close();
    }
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
worker.on('error', (error) => process.stderr.write(`bare-browser-worker: ${error.message}\n`));
await worker.waitUntilReady();
process.stdout.write('ready\n');

process.once('SIGTERM', () => {
  void worker
    .close()
    .then(() => connection.quit())
    .finally(() => {
      void browser.close().finally(() => process.exit(0));
    });
});
