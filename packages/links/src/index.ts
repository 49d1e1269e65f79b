export {
  CrawlScope,
  type FollowStrategy,
  type ScopeOptions,
  type ScopeVerdict,
} from './crawl-scope.js';
export { extractLinks, MAX_LINKS_PER_PAGE, type PageLinks } from './extract-links.js';
export { MAX_SITEMAP_BYTES, readSitemap, robotsSitemaps, type SitemapDocument } from './sitemaps.js';
