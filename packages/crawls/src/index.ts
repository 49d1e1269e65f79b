export {
  type CrawlState,
  type CrawlStatus,
  CrawlStore,
  checkCrawlName,
  describeScope,
  type LinkAdmission,
  pendingOf,
  RECEIPT_GRACE_MS,
} from './crawl-store.js';
