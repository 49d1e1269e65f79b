import { readdirSync, readFileSync } from 'node:fs';
import type { CrawlObserver } from '@crawlfleet/core';
import type { Logger } from '@crawlfleet/log';
import type { Browser, BrowserContext, BrowserContextOptions } from 'playwright-core';
import { launchChromium } from './chromium.js';

export interface BrowserPoolOptions {
  /** The Chromium binary (`chromiumPath()`). */
  path: string;
  /** Contexts open at once, at most: what the worker renders in parallel. */
  contexts: number;
  /** Above this (MiB, proportional set size of Chromium's processes), the browser is replaced once idle. */
  maxMemoryMb: number;
  logger: Logger;
  observer?: CrawlObserver | undefined;
  /** How often the browser's memory is read. Default 2 s. */
  memoryEveryMs?: number | undefined;
}

/** A context of the pool's browser, and its slot: `close` gives the slot back. */
export interface PooledContext {
  readonly context: BrowserContext;
  close(): Promise<void>;
}

/**
 * One Chromium and a bounded number of contexts in it (one per render job; a context is a fresh
 * profile: nothing passes between jobs but what the session carries). Launched on first use. Its
 * memory is read every few seconds (the proportional set size of every process under this one
 * that is Chromium's): past the ceiling, no new context opens in it, the open ones finish, and a
 * fresh browser replaces it. A browser that dies is replaced by the next context that asks.
 */
export class BrowserPool {
  private browser: Promise<Browser> | undefined;
  private open = 0;
  private readonly waiting: Array<() => void> = [];
  /** Set while the browser is over its memory ceiling: it is replaced once its contexts are done. */
  private replacing = false;
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  /** The browser's memory at the last reading, in MiB, and the most seen. */
  readonly memory = { mb: 0, peakMb: 0 };
  /** Browsers replaced for going over the memory ceiling. */
  replacements = 0;

  constructor(private readonly options: BrowserPoolOptions) {
    this.timer = setInterval(() => this.checkMemory(), options.memoryEveryMs ?? 2_000);
    this.timer.unref();
  }

  /** Contexts open at once, at most. */
  get contexts(): number {
    return this.options.contexts;
  }

  /** Contexts open now. */
  get contextsOpen(): number {
    return this.open;
  }

  /** Starts the browser now (a worker checks it can before taking jobs); throws `BrowserUnavailableError`. */
  async start(): Promise<string> {
    return (await this.running()).version();
  }

  /** Opens a context once a slot is free (and the browser is not being replaced). */
  async context(options: BrowserContextOptions): Promise<PooledContext> {
    if (this.closed) throw new Error('the browser pool is closed');
    while (this.open >= this.options.contexts || this.replacing)
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.open++;
    const started = performance.now();
    let context: BrowserContext;
    try {
      context = await (await this.running()).newContext(options);
    } catch (error) {
      this.release();
      throw error;
    }
    this.options.observer?.contextOpened?.(performance.now() - started);
    let done = false;
    return {
      context,
      close: async () => {
        if (done) return;
        done = true;
        await context.close().catch(() => undefined);
        this.options.observer?.contextClosed?.();
        this.release();
      },
    };
  }

  private release(): void {
    this.open--;
    if (this.replacing && this.open === 0) void this.replace();
    else this.waiting.shift()?.();
  }

  /** The live browser, launched (again) when there is none. */
  private running(): Promise<Browser> {
    if (this.browser !== undefined) return this.browser;
    const launching = launchChromium(this.options.path).then((browser) => {
      browser.on('disconnected', () => {
        if (this.closed) return;
        this.options.logger.warn('the browser went away; the next render starts a new one');
        this.browser = undefined;
      });
      return browser;
    });
    // A launch that failed is tried again by the next context.
    launching.catch(() => {
      if (this.browser === launching) this.browser = undefined;
    });
    this.browser = launching;
    return launching;
  }

  private checkMemory(): void {
    if (this.browser === undefined || this.replacing) return;
    const mb = chromiumMemoryMb();
    this.memory.mb = mb;
    this.memory.peakMb = Math.max(this.memory.peakMb, mb);
    if (mb <= this.options.maxMemoryMb) return;
    this.options.logger.warn(
      { memory_mb: Math.round(mb), max_mb: this.options.maxMemoryMb, contexts_open: this.open },
      'the browser is over its memory ceiling: it is replaced once its open pages are done',
    );
    this.replacing = true;
    if (this.open === 0) void this.replace();
  }

  private async replace(): Promise<void> {
    this.replacements++;
    const old = this.browser;
    this.browser = undefined;
    await old?.then((browser) => browser.close()).catch(() => undefined);
    this.replacing = false;
    this.memory.mb = 0;
    // Everyone who waited may go now (the slots decide how many at once).
    for (const wake of this.waiting.splice(0)) wake();
  }

  /** Closes the browser (open contexts with it). */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    for (const wake of this.waiting.splice(0)) wake();
    await this.browser?.then((browser) => browser.close()).catch(() => undefined);
    this.browser = undefined;
  }
}

/**
 * The memory of this process's Chromium processes (those under it whose command is Chromium's),
 * as proportional set size (shared pages split between the processes that share them), in MiB.
 * Linux's /proc; elsewhere 0.
 */
export function chromiumMemoryMb(root: number = process.pid): number {
  let entries: string[];
  try {
    entries = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return 0;
  }
  const children = new Map<number, number[]>();
  for (const name of entries) {
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // The parent's pid follows the state, after the command's closing parenthesis.
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(parent) ?? [];
      list.push(Number(name));
      children.set(parent, list);
    } catch {
      // Gone meanwhile.
    }
  }
  let kib = 0;
  const stack = [...(children.get(root) ?? [])];
  while (stack.length > 0) {
    const pid = stack.pop() as number;
    stack.push(...(children.get(pid) ?? []));
    try {
      if (!/chrom/i.test(readFileSync(`/proc/${pid}/comm`, 'utf8'))) continue;
      const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
      kib += Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0);
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return kib / 1024;
}
