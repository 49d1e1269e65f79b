import type { IncomingHttpHeaders } from 'node:http';
import type { CrawlObserver, FetchConfig, RenderConfig } from '@crawlfleet/core';
import {
  AddressPolicy,
  BodyTooLargeError,
  type FetchedPage,
  type FetchRequest,
  type FetchTenant,
  type PageFetcher,
  type PageSession,
  type RenderedPage,
} from '@crawlfleet/fetcher';
import type { Logger } from '@crawlfleet/log';
import type { BrowserContext, Page, Response, Route } from 'playwright-core';
import { type BrowserCookie, cookieChanges, toBrowserCookies } from './browser-cookies.js';
import { browserError } from './browser-errors.js';
import type { BrowserPool, PooledContext } from './browser-pool.js';
import { type EgressGuard, type EgressLease, REFUSED_HEADER } from './egress-guard.js';
import { restoreStorage, storageChanges, storageOrigins } from './origin-storage.js';

/** What a browser login fills in and clicks. */
export interface FormFill {
  /** Field name (or CSS selector) to the value typed into it. */
  fields: Record<string, string>;
  /** What to click; default: the form's first submit control. */
  submit?: string | undefined;
  /** A selector that shows once the login went through; default: the navigation the click starts. */
  waitFor?: string | undefined;
  /** The form the fields are in, when the page has several. */
  formSelector?: string | undefined;
}

/** The render behind each page this fetcher handed out (a login fills its form). */
const renders = new WeakMap<RenderedPage, Render>();

export interface BrowserFetcherOptions {
  pool: BrowserPool;
  guard: EgressGuard;
  render: RenderConfig;
  fetch: FetchConfig;
  logger: Logger;
  observer?: CrawlObserver | undefined;
}

/** Headers the browser sets itself (or that a context option carries): never sent as extra headers. */
const BROWSER_HEADERS = new Set([
  'user-agent',
  'accept',
  'accept-encoding',
  'accept-language',
  'connection',
  'cookie',
  'host',
  'upgrade-insecure-requests',
  'priority',
  'te',
]);

/** The jar a render job's cookies go back through: the session's, as HTTP responses use it. */
type Jar = NonNullable<FetchRequest['cookieJar']>;

/**
 * Renders a job's page in Chromium as its session, behind the same `PageFetcher` seam HTTP
 * jobs use: a fresh context per page (one of the pool's bounded slots) with the session's
 * cookies (checked as a browser checks them; `toBrowserCookies`), its origin storage, its user
 * agent and language, every request through the egress guard (address policy on every
 * connection, the session's proxy chained behind it), downloads refused and the tenant's blocked
 * resource types aborted. Navigations after the first ask robots.txt first (`beforeHop`), and so
 * does each redirect the page went through. The page comes back still open (`rendered`): the
 * cookies it set are already in the jar; `close` takes what changed since (a handler clicking
 * through the page) and the origin storage back, then closes the context.
 */
export class BrowserFetcher implements PageFetcher {
  private readonly policies = new Map<string, AddressPolicy>();

  constructor(private readonly options: BrowserFetcherOptions) {}

  async fetch(request: FetchRequest, tenant: FetchTenant): Promise<FetchedPage> {
    const started = performance.now();
    const { fetch: fetchConfig, observer } = this.options;
    const headers = lowerCased({ ...tenant.config.headers, ...request.headers });
    const userAgent = headers['user-agent'] ?? tenant.config.userAgent ?? fetchConfig.userAgent;
    const lease = this.options.guard.lease({
      policy: this.policyOf(tenant),
      upstream: tenant.proxy,
      resolveLocally: tenant.config.proxy?.resolveLocally === true,
      checkUrl: request.beforeHop,
    });
    const session = request.session;
    let pooled: PooledContext;
    try {
      pooled = await this.options.pool.context({
        proxy: lease.proxy,
        userAgent,
        ...localeOf(headers['accept-language']),
        acceptDownloads: false,
        serviceWorkers: 'block',
      });
    } catch (error) {
      lease.release();
      throw browserError(error, lease);
    }
    // The tenant's and the job's own headers (a login's token among them) go to the job's host only,
    // never to the third parties a page loads from, as an HTTP job's never leave its redirects' origin.
    const extra = Object.fromEntries(Object.entries(headers).filter(([name]) => !BROWSER_HEADERS.has(name)));
    const rendering = new Render(pooled, lease, request, session, extra, this.options);
    try {
      const page = await rendering.load(tenant, started);
      observer?.pageRendered?.(page.status < 400 ? 'rendered' : 'http_error');
      return page;
    } catch (error) {
      const failure = browserError(error, lease);
      observer?.pageRendered?.(outcomeOf(failure));
      await rendering.close(false);
      throw failure;
    }
  }

  /**
   * A login in the browser (`login.browser`): the login page is rendered as the session, each
   * field of `form` filled (a field's name, or a CSS selector), the submit control clicked, and
   * the page it lands on (or, with `waitFor`, the page once that selector shows) answered, with
   * the cookies it ended with already in the session's jar. The context is closed.
   */
  async submitForm(request: FetchRequest, tenant: FetchTenant, form: FormFill): Promise<FetchedPage> {
    const loaded = await this.fetch(request, tenant);
    const rendered = loaded.rendered as RenderedPage;
    const render = renders.get(rendered) as Render;
    try {
      return await render.submit(rendered.page as Page, loaded, form);
    } catch (error) {
      throw browserError(error, render.leaseOf);
    } finally {
      await rendered.close();
    }
  }

  /** The tenant's address policy, built once. */
  private policyOf(tenant: FetchTenant): AddressPolicy {
    let policy = this.policies.get(tenant.name);
    if (policy === undefined) {
      policy = new AddressPolicy(tenant.config.allowHosts);
      this.policies.set(tenant.name, policy);
    }
    return policy;
  }
}

/** One page being rendered: its context, what went in, and how it goes back. */
class Render {
  /** The context's cookies when last synced with the jar: what the next sync compares against. */
  private synced: BrowserCookie[] = [];
  private closed: Promise<void> | undefined;

  constructor(
    private readonly pooled: PooledContext,
    private readonly lease: EgressLease,
    private readonly request: FetchRequest,
    private readonly session: PageSession | undefined,
    private readonly extraHeaders: Record<string, string>,
    private readonly options: BrowserFetcherOptions,
  ) {}

  private get context(): BrowserContext {
    return this.pooled.context;
  }

  async load(tenant: FetchTenant, started: number): Promise<FetchedPage> {
    const { render, fetch: fetchConfig } = this.options;
    await this.cookiesIn();
    await this.intercept(tenant.config.render.block);
    const page = await this.context.newPage();
    page.setDefaultTimeout(render.timeoutMs);
    // The session's localStorage goes in as the first page's documents start (Playwright's own
    // storageState would load every origin in a page of its own first: a page's worth of work).
    const stored = this.session?.storage;
    const restoring =
      stored === undefined || stored.size === 0
        ? undefined
        : await page.addInitScript(restoreStorage, storageOrigins(stored));
    const response = await page.goto(this.request.url, { waitUntil: render.waitUntil, timeout: render.timeoutMs });
    // Later navigations (a handler's clicks) keep what the page itself did with its storage.
    await restoring?.dispose();
    if (response === null)
      throw Object.assign(new Error(`the browser gave no response for ${this.request.url}`), { code: 'ECONNRESET' });
    // The guard refused the page itself (plain http: its refusal arrives as the answer).
    if (response.headers()[REFUSED_HEADER] !== undefined)
      throw this.lease.refused[0] ?? new Error('the egress guard refused the page');
    const redirects = await this.checkRedirects(response);
    const headers = toIncoming(await response.allHeaders());
    const html = /^\s*(text\/html|application\/xhtml\+xml)/i.test(String(headers['content-type'] ?? ''));
    // The rendered document for a page; other content (JSON, a PDF) as it came.
    const body = html ? Buffer.from(await page.content(), 'utf8') : await response.body();
    if (body.length > fetchConfig.maxBodyBytes)
      throw new BodyTooLargeError(`the rendered page is larger than ${fetchConfig.maxBodyBytes} bytes`);
    // The body is the decoded, rendered document: the response's length and coding say nothing of it.
    delete headers['content-length'];
    delete headers['content-encoding'];
    const screenshot = render.screenshot ? await page.screenshot({ fullPage: true, type: 'png' }) : undefined;
    await this.cookiesOut();
    return {
      url: this.request.url,
      finalUrl: page.url(),
      status: response.status(),
      headers,
      body,
      bodyBytes: body.length,
      redirects,
      durationMs: performance.now() - started,
      screenshot,
      rendered: this.handle(page),
    };
  }

  private handle(page: Page): RenderedPage {
    const handle: RenderedPage = { page, close: () => this.close() };
    renders.set(handle, this);
    return handle;
  }

  get leaseOf(): EgressLease {
    return this.lease;
  }

  /** Fills and submits a login form on the loaded page; the page it ends on. */
  async submit(page: Page, loaded: FetchedPage, form: FormFill): Promise<FetchedPage> {
    const started = performance.now();
    const { render } = this.options;
    const scope =
      form.formSelector === undefined
        ? page
            .locator('form')
            .filter({ has: page.locator('input') })
            .first()
        : page.locator(form.formSelector).first();
    for (const [field, value] of Object.entries(form.fields))
      await scope.locator(fieldSelector(field)).first().fill(value, { timeout: render.timeoutMs });
    const submit = scope.locator(form.submit ?? 'button[type=submit], input[type=submit], button:not([type])').first();
    let status = loaded.status;
    let headers = loaded.headers;
    let response: Response | undefined;
    if (form.waitFor !== undefined) {
      await submit.click({ timeout: render.timeoutMs });
      await page.waitForSelector(form.waitFor, { timeout: render.timeoutMs });
    } else {
      // The page the click leads to; a script that refuses the login may lead nowhere, so the
      // network going quiet after the click ends the wait as well.
      const navigated = page
        .waitForResponse((answer) => answer.request().isNavigationRequest() && answer.frame() === page.mainFrame(), {
          timeout: render.timeoutMs,
        })
        .catch(() => undefined);
      void navigated.then((answer) => {
        response = answer;
      });
      const network = networkWatch(page, QUIET_MS);
      await submit.click({ timeout: render.timeoutMs });
      await Promise.race([navigated, network.quiet()]);
      if (response !== undefined)
        await page.waitForLoadState(render.waitUntil === 'commit' ? 'load' : render.waitUntil, {
          timeout: render.timeoutMs,
        });
    }
    const body = Buffer.from(await settledContent(page, render.timeoutMs), 'utf8');
    // A navigation that began after the network went quiet is what the click led to after all.
    const landed = response;
    if (landed !== undefined) {
      status = landed.status();
      headers = toIncoming(await landed.allHeaders());
    }
    await this.cookiesOut();
    return {
      url: loaded.url,
      finalUrl: page.url(),
      status,
      headers,
      body,
      bodyBytes: body.length,
      redirects: 0,
      durationMs: performance.now() - started,
    };
  }

  /** The session's cookies into the context, checked; what the context then holds is the baseline. */
  private async cookiesIn(): Promise<void> {
    if (this.session === undefined) return;
    const started = performance.now();
    const { cookies, dropped } = toBrowserCookies(await this.session.cookies());
    for (const [reason, count] of dropped) this.options.observer?.browserCookiesDropped?.(reason, count);
    if (cookies.length > 0) {
      try {
        await this.context.addCookies(cookies);
      } catch {
        // One cookie Chromium refuses fails the batch: the rest go in one by one.
        for (const cookie of cookies)
          await this.context
            .addCookies([cookie])
            .catch(() => this.options.observer?.browserCookiesDropped?.('malformed', 1));
      }
    }
    this.synced = (await this.context.cookies()) as BrowserCookie[];
    this.options.observer?.stateSynced?.('browser_in', performance.now() - started);
  }

  /**
   * What the page changed in the context's cookies since the last sync, into the session's jar as
   * Set-Cookie headers (the jar's one write path: unchanged cookies and trackers write nothing).
   */
  private async cookiesOut(): Promise<void> {
    const jar: Jar | undefined = this.request.cookieJar;
    if (jar === undefined || this.session === undefined) return;
    const started = performance.now();
    const now = (await this.context.cookies()) as BrowserCookie[];
    const changes = cookieChanges(this.synced, now);
    for (const change of changes) await jar.setCookie(change.setCookie, change.url);
    this.synced = now;
    this.options.observer?.cookiesMutated?.('browser', changes.length);
    this.options.observer?.stateSynced?.('browser_out', performance.now() - started);
  }

  /** The origins whose localStorage the page changed, into the session. */
  private async storageOut(): Promise<void> {
    const session = this.session;
    if (session === undefined) return;
    const state = await this.context.storageState();
    const { changed, tooLarge } = storageChanges(
      session.storage,
      state.origins,
      this.options.render.maxStorageBytesPerOrigin,
    );
    for (const [origin, entries] of changed) session.setStorage(origin, entries);
    if (tooLarge.length > 0)
      this.options.logger.warn(
        { origins: tooLarge, max_bytes: this.options.render.maxStorageBytesPerOrigin },
        "a page's localStorage is larger than render.maxStorageBytesPerOrigin; it is not kept",
      );
  }

  /**
   * Blocked resource types are aborted; a navigation after the first (a click, a script moving
   * the page, a frame) asks robots.txt before it goes; requests to the job's host carry the extra
   * headers.
   */
  private async intercept(block: readonly string[]): Promise<void> {
    const check = this.request.beforeHop;
    const extra = this.extraHeaders;
    const headed = Object.keys(extra).length > 0;
    if (block.length === 0 && check === undefined && !headed) return;
    const blocked = new Set(block);
    const host = new URL(this.request.url).host;
    let first = true;
    await this.context.route('**/*', async (route: Route) => {
      const request = route.request();
      if (blocked.has(request.resourceType())) return route.abort('blockedbyclient');
      if (check !== undefined && request.isNavigationRequest() && request.redirectedFrom() === null) {
        if (first) first = false;
        else {
          try {
            await check(new URL(request.url()));
          } catch (error) {
            (this.lease.refused as Error[]).push(error as Error);
            return route.abort('blockedbyclient');
          }
        }
      }
      if (headed && URL.canParse(request.url()) && new URL(request.url()).host === host)
        return route.continue({ headers: { ...request.headers(), ...extra } });
      return route.continue();
    });
  }

  /**
   * The redirects the page went through, each target asked of robots.txt (plain-http ones were
   * asked by the guard before they went; an https hop is seen only now, and the page is refused).
   */
  private async checkRedirects(response: Response): Promise<number> {
    const hops: string[] = [];
    for (let request = response.request(); request.redirectedFrom() !== null; ) {
      hops.push(request.url());
      request = request.redirectedFrom() as NonNullable<ReturnType<typeof request.redirectedFrom>>;
    }
    const check = this.request.beforeHop;
    if (check !== undefined) for (const hop of hops) await check(new URL(hop));
    return hops.length;
  }

  /**
   * Takes what changed back into the session, once, and closes the context. After a page that
   * failed to load only its cookies are taken (the browser's cookie store answers whatever the
   * page is doing; its storage would wait on a document that may never come), and the whole sync
   * is bounded: a context always closes.
   */
  close(loaded = true): Promise<void> {
    this.closed ??= (async () => {
      try {
        if (this.session !== undefined) await withinMs(this.syncOut(loaded), SYNC_OUT_MS);
      } catch (error) {
        this.options.logger.warn(
          { err: (error as Error).message },
          "could not read the page's cookies and storage back; what it changed since loading is lost",
        );
      } finally {
        await this.pooled.close();
        this.lease.release();
      }
    })();
    return this.closed;
  }

  private async syncOut(loaded: boolean): Promise<void> {
    await this.cookiesOut();
    if (loaded) await this.storageOut();
  }
}

/** How long taking a page's changes back may take before its context is closed anyway. */
const SYNC_OUT_MS = 10_000;

/** `work`, or a rejection once `ms` have passed. */
function withinMs<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`took longer than ${ms} ms`)), ms);
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

/**
 * The page's document once no navigation is under way: a script may move the page on just as it
 * is read (Chromium then refuses), so it is read again once the new page has loaded.
 */
async function settledContent(page: Page, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await page.content();
    } catch (error) {
      if (!/navigating/i.test((error as Error).message) || Date.now() > deadline) throw error;
      await page.waitForLoadState('load', { timeout: Math.max(1, deadline - Date.now()) }).catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** How long the network stays quiet after a login's click before its page counts as what it led to. */
const QUIET_MS = 750;

/**
 * Counts the page's requests in flight from now on; `quiet()` then resolves once none has been
 * in flight for `ms` (a request started before `quiet()` was asked for still counts).
 */
function networkWatch(page: Page, ms: number): { quiet(): Promise<void> } {
  let inFlight = 0;
  let armed: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const settle = () => {
    clearTimeout(timer);
    if (inFlight === 0 && armed !== undefined) timer = setTimeout(armed, ms);
  };
  const started = () => {
    inFlight++;
    clearTimeout(timer);
  };
  const ended = () => {
    inFlight = Math.max(0, inFlight - 1);
    settle();
  };
  page.on('request', started);
  page.on('requestfinished', ended);
  page.on('requestfailed', ended);
  return {
    quiet: () =>
      new Promise<void>((resolve) => {
        armed = () => {
          page.off('request', started);
          page.off('requestfinished', ended);
          page.off('requestfailed', ended);
          resolve();
        };
        settle();
      }),
  };
}

/** A form field given by name, or a CSS selector as it is (`#id`, `.class`, `[attr]`, `form input`). */
function fieldSelector(field: string): string {
  return /^[#.[]|[\s>:]/.test(field) ? field : `[name="${field.replace(/["\\]/g, '\\$&')}"]`;
}

/** A page's outcome for `pages_rendered_total`, from the error that ended it. */
function outcomeOf(error: Error): string {
  const code = (error as { code?: unknown }).code;
  if (error.name === 'TimeoutError' || code === 'ETIMEDOUT') return 'timeout';
  if (code === 'ERR_ADDRESS_NOT_ALLOWED' || code === 'ERR_ROBOTS_DISALLOWED' || code === 'ERR_DOWNLOAD_REFUSED')
    return 'refused';
  return 'failed';
}

function lowerCased(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));
}

/** The context's locale from an Accept-Language header (its first language): Chromium sends it. */
function localeOf(acceptLanguage: string | undefined): { locale?: string } {
  const first = acceptLanguage?.split(',')[0]?.split(';')[0]?.trim();
  return first === undefined || first === '' || first === '*' ? {} : { locale: first };
}

/** Playwright's headers (lower-cased, repeated ones joined by newlines) as Node's. */
function toIncoming(headers: Record<string, string>): IncomingHttpHeaders {
  const incoming: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers))
    incoming[name] = name === 'set-cookie' ? value.split('\n') : value;
  return incoming;
}

export type { Page };
