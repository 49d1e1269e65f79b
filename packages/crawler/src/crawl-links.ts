import type { CrawlDefinition, FetchJob } from '@crawlfleet/core';
import { InputError } from '@crawlfleet/core';
import type { CrawlStore } from '@crawlfleet/crawls';
import type { FetchedPage } from '@crawlfleet/fetcher';
import { CrawlScope, extractLinks } from '@crawlfleet/links';
import { buildFetchJob } from '@crawlfleet/producer';
import type { FrontierWrite } from '@crawlfleet/results';

/** Pages whose links a crawl follows: HTML, as the server says. */
const HTML = /^\s*(text\/html|application\/xhtml\+xml)\s*(;|$)/i;

interface KnownCrawl {
  definition: CrawlDefinition;
  scope: CrawlScope;
}

/**
 * The links stage of a crawl's job: the links of its page that the crawl's scope follows, as jobs
 * one level deeper (each built as a submitted URL is: validated, canonical URL, idempotency key),
 * for the result write to admit to the crawl's frontier in the same step. Links resolve against
 * where the page ended up (after redirects), as a browser's do; the scope compares them with the
 * page's own URL. A crawl's definition is read once per worker: it never changes.
 */
export class CrawlLinks {
  private readonly known = new Map<string, Promise<KnownCrawl | undefined>>();

  constructor(private readonly crawls: CrawlStore) {}

  /** What a crawl job's result write admits: its crawl (counted) and the links it follows. */
  async of(data: FetchJob, page: FetchedPage): Promise<FrontierWrite | undefined> {
    const crawl = data.crawl;
    if (crawl === undefined) return undefined;
    const known = await this.crawl(crawl.name);
    const write: FrontierWrite = { crawl: crawl.name, maxPages: known?.definition.maxPages ?? 0, links: [] };
    const contentType = String(page.headers['content-type'] ?? '');
    if (known === undefined || page.status < 200 || page.status >= 300 || !HTML.test(contentType)) return write;
    const { links } = extractLinks(page.body, page.finalUrl);
    const context = {
      tenant: data.tenant,
      sessionId: data.sessionId,
      submittedAt: new Date().toISOString(),
      crawl: { name: crawl.name, depth: crawl.depth + 1, parent: data.idempotencyKey },
    };
    const keys = new Set<string>();
    for (const link of links) {
      if (known.scope.judge(link, data.url, crawl.depth) !== 'in') continue;
      let job: FetchJob;
      try {
        job = buildFetchJob({ url: link }, context);
      } catch (error) {
        // A link no submit would take (too long, say) is not followed.
        if (error instanceof InputError) continue;
        throw error;
      }
      if (keys.has(job.idempotencyKey) || job.idempotencyKey === data.idempotencyKey) continue;
      keys.add(job.idempotencyKey);
      write.links.push({ key: job.idempotencyKey, job: JSON.stringify(job) });
    }
    return write;
  }

  private crawl(name: string): Promise<KnownCrawl | undefined> {
    let known = this.known.get(name);
    if (known === undefined) {
      known = this.crawls
        .definition(name)
        .then((definition) =>
          definition === undefined ? undefined : { definition, scope: new CrawlScope(definition) },
        );
      // A failed read is asked again by the next job.
      known.catch(() => this.known.delete(name));
      this.known.set(name, known);
    }
    return known;
  }
}
