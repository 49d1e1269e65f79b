export {
  type CrawlState,
  type CrawlStatus,
  CrawlStore,
  checkCrawlName,
  describeScope,
  pendingOf,
} from './crawl-store.js';
