import type { CrawlObserver, FetchConfig, RenderConfig } from '@crawlfleet/core';
import type { FetchedPage, FetchRequest, FetchTenant } from '@crawlfleet/fetcher';
import type { Logger } from '@crawlfleet/log';
import { BrowserFetcher, type FormFill } from './browser-fetcher.js';
import { BrowserPool } from './browser-pool.js';
import { chromiumPath } from './chromium.js';
import { EgressGuard } from './egress-guard.js';

export interface BrowserRuntimeOptions {
  /** Contexts open at once. */
  contexts: number;
  render: RenderConfig;
  fetch: FetchConfig;
  logger: Logger;
  observer?: CrawlObserver | undefined;
  /** The Chromium binary; default `chromiumPath()`. */
  path?: string | undefined;
}

/** A worker's browser: its Chromium pool, its egress guard, and the fetcher that renders with them. */
export class BrowserRuntime {
  private constructor(
    readonly pool: BrowserPool,
    private readonly guard: EgressGuard,
    readonly fetcher: BrowserFetcher,
  ) {}

  static async start(options: BrowserRuntimeOptions): Promise<BrowserRuntime> {
    const guard = await EgressGuard.start();
    const pool = new BrowserPool({
      path: options.path ?? chromiumPath(),
      contexts: options.contexts,
      maxMemoryMb: options.render.maxBrowserMemoryMb,
      logger: options.logger,
      observer: options.observer,
    });
    const fetcher = new BrowserFetcher({ ...options, pool, guard });
    return new BrowserRuntime(pool, guard, fetcher);
  }

  async close(): Promise<void> {
    await this.pool.close();
    await this.guard.close();
  }
}

/**
 * Browser logins for a worker that renders nothing (an HTTP worker whose tenant logs in with a
 * browser): a runtime of two contexts, started by the first login and kept for the next.
 */
export class LazyBrowserLogin {
  private runtime: Promise<BrowserRuntime> | undefined;

  constructor(private readonly options: Omit<BrowserRuntimeOptions, 'contexts'>) {}

  async submitForm(request: FetchRequest, tenant: FetchTenant, form: FormFill): Promise<FetchedPage> {
    if (this.runtime === undefined) {
      const starting = BrowserRuntime.start({ ...this.options, contexts: 2 });
      // A runtime that did not start is tried again by the next login.
      starting.catch(() => {
        if (this.runtime === starting) this.runtime = undefined;
      });
      this.runtime = starting;
    }
    return (await this.runtime).fetcher.submitForm(request, tenant, form);
  }

  async close(): Promise<void> {
    await (await this.runtime?.catch(() => undefined))?.close();
  }
}
