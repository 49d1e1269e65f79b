import type { CrawlDefinition, FetchJob, JobCrawl } from '@crawlfleet/core';
import { InputError } from '@crawlfleet/core';
import type { CrawlStore } from '@crawlfleet/crawls';
import type { FetchedPage } from '@crawlfleet/fetcher';
import type { CrawlScope, extractLinks } from '@crawlfleet/links';
import type { Logger } from '@crawlfleet/log';
import { buildFetchJob } from '@crawlfleet/producer';
import { type FrontierWrite, MAX_RECORD_BYTES, MAX_RECORDS_PER_PAGE, type StoredRecord } from '@crawlfleet/results';
import type { JobSession } from '@crawlfleet/sessions';
import type { CheerioAPI } from 'cheerio';
import type { CrawlHandler, EnqueueRequest, Handler, HandlerContext } from './crawl-handler.js';
import type { Failure } from './verdicts.js';

/**
 * The link extractor and scopes, loaded with a worker's first named crawl (kept in `KnownCrawl`):
 * a worker that only fetches never holds the HTML parser (htmlparser2 and its DOM helpers, about 2.5 MB).
 */
const loadLinks = () => import('@crawlfleet/links');

/** Pages whose links a crawl follows: HTML, as the server says. */
const HTML = /^\s*(text\/html|application\/xhtml\+xml)\s*(;|$)/i;

interface KnownCrawl {
  definition: CrawlDefinition;
  scope: CrawlScope;
  /** The link extractor, loaded with the crawl (see `loadLinks`). */
  extract: typeof extractLinks;
}

/** A crawl's handler, and how long it may run on one page. */
export interface HandlerSetup {
  handler: CrawlHandler;
  timeoutMs: number;
}

/** Thrown inside to stop a handler that ran past its time. */
class HandlerTimeout extends Error {}

/**
 * The page stage of a named crawl's job, after `judge`: what its result write adds to the crawl.
 * The links its scope follows (from an HTML page; resolved against where the page ended up, as a
 * browser's are; judged against the page's own URL), and, with a handler, what the handler
 * enqueues and the records it pushes. Each link is built as a submitted URL is (validated,
 * canonical URL, idempotency key), one level deeper. A handler that throws or runs past its time
 * fails the job (`handler_error`, `handler_timeout`: recoverable, retried), and nothing it did
 * is kept. A crawl's definition is read once per worker: it never changes.
 */
export class CrawlPages {
  private readonly known = new Map<string, Promise<KnownCrawl | undefined>>();

  constructor(
    private readonly crawls: CrawlStore,
    private readonly logger: Logger,
    private readonly setup?: HandlerSetup | undefined,
  ) {}

  async of(
    data: FetchJob,
    page: FetchedPage,
    session: JobSession | undefined,
  ): Promise<{ frontier?: FrontierWrite | undefined } | { failure: Failure }> {
    const crawl = data.crawl;
    if (crawl === undefined) return {};
    const known = await this.crawl(crawl.name);
    const write: FrontierWrite = { crawl: crawl.name, maxPages: known?.definition.maxPages ?? 0, links: [] };
    if (known === undefined) return { frontier: write };
    const ok = page.status >= 200 && page.status < 300;
    const html = ok && HTML.test(String(page.headers['content-type'] ?? ''));
    const links = new Links(data, crawl, known.definition);
    if (html)
      for (const link of known.extract(page.body, page.finalUrl).links)
        if (known.scope.judge(link, data.url, crawl.depth) === 'in') links.add({ url: link });
    const handler = ok ? this.setup?.handler.route(crawl.label) : undefined;
    if (handler !== undefined) {
      const ran = await this.runHandler(handler, data, crawl, page, session, links);
      if ('failure' in ran) return ran;
      write.records = ran.records;
    }
    write.links = links.admitted;
    return { frontier: write };
  }

  private async runHandler(
    handler: Handler,
    data: FetchJob,
    crawl: JobCrawl,
    page: FetchedPage,
    session: JobSession | undefined,
    links: Links,
  ): Promise<{ records: string[] } | { failure: Failure }> {
    const setup = this.setup as HandlerSetup;
    const records: string[] = [];
    // Workflow moves reach the session only when the handler succeeds.
    const workflows = new Map<string, unknown>();
    let open = true;
    let document: CheerioAPI | undefined;
    const log = this.logger.child({ crawl: crawl.name, url: data.url });
    const pushedAt = new Date().toISOString();
    const context: HandlerContext = {
      request: { url: data.url, label: crawl.label, depth: crawl.depth, userData: crawl.userData ?? {} },
      response: {
        url: page.finalUrl,
        status: page.status,
        headers: page.headers,
        body: page.body,
        text: () => page.body.toString('utf8'),
        json: () => JSON.parse(page.body.toString('utf8')),
      },
      get $() {
        document ??= setup.handler.load(page.body.toString('utf8'));
        return document;
      },
      page: page.rendered?.page,
      enqueue: (requests, options = {}) => {
        if (!open) throw new HandlerTimeout('the handler ran past its time');
        const list = Array.isArray(requests) ? requests : [requests];
        let added = 0;
        for (const item of list as Array<string | EnqueueRequest>) {
          const request = typeof item === 'string' ? { url: item } : item;
          // Relative to where the page ended up, as its own links are.
          const url = URL.canParse(request.url, page.finalUrl) ? new URL(request.url, page.finalUrl).href : request.url;
          const given = { label: options.label, userData: options.userData, render: options.render };
          if (links.add({ ...given, ...request, url }, true)) added++;
        }
        return added;
      },
      push: (record) => {
        if (!open) throw new HandlerTimeout('the handler ran past its time');
        if (records.length >= MAX_RECORDS_PER_PAGE)
          throw new Error(`a page may push at most ${MAX_RECORDS_PER_PAGE} records`);
        const stored: StoredRecord = {
          kind: 'record',
          id: `${data.idempotencyKey}:${records.length}`,
          crawl: crawl.name,
          url: data.url,
          idempotencyKey: data.idempotencyKey,
          tenant: data.tenant,
          data: record ?? null,
          pushedAt,
        };
        const json = JSON.stringify(stored);
        if (json.length > MAX_RECORD_BYTES)
          throw new Error(`a record is larger than ${MAX_RECORD_BYTES} bytes as JSON`);
        records.push(json);
      },
      session:
        session === undefined
          ? undefined
          : {
              workflow: async (name) => (workflows.has(name) ? workflows.get(name) : session.workflow(name)),
              setWorkflow: (name, state) => {
                if (!open) throw new HandlerTimeout('the handler ran past its time');
                workflows.set(name, state);
              },
            },
      log: {
        info: (message, fields) => log.info(fields ?? {}, message),
        warn: (message, fields) => log.warn(fields ?? {}, message),
      },
    };
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new HandlerTimeout()), setup.timeoutMs);
    });
    try {
      await Promise.race([Promise.resolve().then(() => handler(context)), timeout]);
      for (const [name, state] of workflows) session?.setWorkflow(name, state);
      return { records };
    } catch (error) {
      links.clear();
      if (error instanceof HandlerTimeout)
        return {
          failure: {
            classification: { failureClass: 'recoverable', reason: 'handler_timeout' },
            message: `the handler ${setup.handler.file} ran past ${setup.timeoutMs} ms on ${data.url}`,
          },
        };
      const thrown = error instanceof Error ? error : new Error(String(error));
      return {
        failure: {
          classification: { failureClass: 'recoverable', reason: 'handler_error' },
          message: `the handler ${setup.handler.file} failed on ${data.url}: ${thrown.stack ?? thrown.message}`,
        },
      };
    } finally {
      open = false;
      clearTimeout(timer);
    }
  }

  private crawl(name: string): Promise<KnownCrawl | undefined> {
    let known = this.known.get(name);
    if (known === undefined) {
      known = Promise.all([this.crawls.definition(name), loadLinks()]).then(([definition, links]) =>
        definition === undefined
          ? undefined
          : { definition, scope: new links.CrawlScope(definition), extract: links.extractLinks },
      );
      // A failed read is asked again by the next job.
      known.catch(() => this.known.delete(name));
      this.known.set(name, known);
    }
    return known;
  }
}

/** The links of one page, as jobs one level deeper, each key once. */
class Links {
  readonly admitted: Array<{ key: string; job: string }> = [];
  /** Each admitted key's place in `admitted`. */
  private readonly keys = new Map<string, number>();
  private readonly context;

  constructor(
    private readonly data: FetchJob,
    crawl: JobCrawl,
    private readonly definition: CrawlDefinition,
  ) {
    this.context = {
      tenant: data.tenant,
      sessionId: data.sessionId,
      submittedAt: new Date().toISOString(),
      depth: crawl.depth + 1,
      name: crawl.name,
      // A rendered page's links are rendered too, unless a handler says otherwise.
      render: data.render === true,
    };
  }

  /**
   * Adds a link; false when it is not followed: past the crawl's max depth, a URL no submit would
   * take (a handler's own is then an error), or one the page already gave.
   */
  add(request: EnqueueRequest, fromHandler = false): boolean {
    const { maxDepth } = this.definition;
    if (maxDepth !== undefined && this.context.depth > maxDepth) return false;
    let job: FetchJob;
    try {
      job = buildFetchJob(
        { url: request.url },
        {
          ...this.context,
          render: request.render ?? this.context.render,
          crawl: {
            name: this.context.name,
            depth: this.context.depth,
            parent: this.data.idempotencyKey,
            ...(request.label === undefined ? {} : { label: request.label }),
            ...(request.userData === undefined ? {} : { userData: request.userData }),
          },
        },
      );
    } catch (error) {
      if (error instanceof InputError && !fromHandler) return false;
      throw error;
    }
    if (job.idempotencyKey === this.data.idempotencyKey) return false;
    const at = this.keys.get(job.idempotencyKey);
    // The handler's own enqueue of a link the page also gave wins: it carries a label and data.
    if (at !== undefined && !fromHandler) return false;
    const link = { key: job.idempotencyKey, job: JSON.stringify(job) };
    if (at !== undefined) this.admitted[at] = link;
    else {
      this.keys.set(job.idempotencyKey, this.admitted.length);
      this.admitted.push(link);
    }
    return true;
  }

  clear(): void {
    this.admitted.length = 0;
    this.keys.clear();
  }
}
