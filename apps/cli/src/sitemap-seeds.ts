import { type CrawlDefinition, type CrawlfleetConfig, tenantConfig } from '@crawlfleet/core';
import { ProxyPlan } from '@crawlfleet/crawler';
import { type FetchedPage, Fetcher } from '@crawlfleet/fetcher';

/** Sitemap files read per submit at most (an index of indexes stops somewhere). */
const MAX_SITEMAP_FILES = 50;

export interface SitemapSeeds {
  /** Page URLs the sitemaps list that the crawl's scope takes, each once, in order. */
  urls: string[];
  /** Sitemap files read. */
  files: number;
  /** What could not be read, one line each (a 404, a file that is no sitemap). */
  problems: string[];
}

/**
 * The pages the sitemaps of the seeds' sites list (`--sitemaps`): the `Sitemap:` lines of each
 * origin's robots.txt, else its `/sitemap.xml`; index files are followed (at most 50 files in all),
 * gzipped ones read. Fetched here, as the tenant (its address policy and proxies), with the
 * fetcher the workers use. A URL is kept when the crawl's scope takes it from its seed (with
 * `follow none`, the seed's own host), up to `limit`.
 */
export async function sitemapSeeds(
  config: CrawlfleetConfig,
  definition: CrawlDefinition,
  seeds: readonly string[],
  limit: number,
): Promise<SitemapSeeds> {
  // Loaded here, not with the CLI: every command (a worker too) would otherwise hold the HTML parser.
  const { CrawlScope, readSitemap, robotsSitemaps } = await import('@crawlfleet/links');
  const tenant = { name: definition.tenant, config: tenantConfig(config, definition.tenant) };
  const plan = tenant.config.proxy === undefined ? undefined : new ProxyPlan(tenant.config.proxy);
  const fetcher = new Fetcher(config.fetch);
  const scope = new CrawlScope({
    ...definition,
    follow: definition.follow === 'none' ? 'same-hostname' : definition.follow,
    maxDepth: undefined,
  });
  const found: SitemapSeeds = { urls: [], files: 0, problems: [] };
  const kept = new Set<string>();
  const origins = new Set<string>();
  const get = (url: string): Promise<FetchedPage> =>
    fetcher.fetch({ url, method: 'GET' }, { ...tenant, proxy: plan?.forRequest(new URL(url).hostname) });
  try {
    for (const seed of seeds) {
      const origin = new URL(seed).origin;
      if (origins.has(origin)) continue;
      origins.add(origin);
      let sitemaps: string[] = [];
      try {
        const robots = await get(`${origin}/robots.txt`);
        if (robots.status === 200) sitemaps = robotsSitemaps(robots.body.toString('utf8'), origin);
      } catch {
        // No robots.txt to read: the conventional place is tried below.
      }
      if (sitemaps.length === 0) sitemaps = [`${origin}/sitemap.xml`];
      const queue = [...sitemaps];
      const visited = new Set<string>();
      while (queue.length > 0 && found.files < MAX_SITEMAP_FILES && found.urls.length < limit) {
        const file = queue.shift() as string;
        if (visited.has(file)) continue;
        visited.add(file);
        let page: FetchedPage;
        try {
          page = await get(file);
        } catch (error) {
          found.problems.push(`${file}: ${(error as Error).message}`);
          continue;
        }
        found.files++;
        if (page.status !== 200) {
          found.problems.push(`${file}: HTTP ${page.status}`);
          continue;
        }
        const document = readSitemap(page.body);
        if (document.kind === 'unknown') {
          found.problems.push(`${file}: not a sitemap (no <urlset> or <sitemapindex>)`);
          continue;
        }
        if (document.kind === 'index') {
          queue.push(...document.locs.filter((loc) => URL.canParse(loc)));
          continue;
        }
        for (const loc of document.locs) {
          if (found.urls.length >= limit) break;
          if (!URL.canParse(loc) || kept.has(loc) || scope.judge(loc, seed, -1) !== 'in') continue;
          kept.add(loc);
          found.urls.push(loc);
        }
      }
    }
  } finally {
    fetcher.close();
  }
  return found;
}
