export {
  type CrawlState,
  type CrawlStatus,
  CrawlStore,
  checkCrawlName,
  describeScope,
} from './crawl-store.js';
