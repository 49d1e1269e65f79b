export {
  type CrawlState,
  type CrawlStatus,
  CrawlStore,
  checkCrawlName,
  describeScope,
  type LinkAdmission,
  pendingOf,
} from './crawl-store.js';
