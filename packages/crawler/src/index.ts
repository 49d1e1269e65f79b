export {
  CrawlProcessor,
  type CrawlProcessorDeps,
  DeadLetteredError,
  type JobOutcome,
  RetryLaterError,
} from './crawl-processor.js';
export { CrawlWorker, type CrawlWorkerOptions, DEFAULT_CONCURRENCY, type JobEvent } from './crawl-worker.js';
export {
  DEFAULT_GRACE_MS,
  type OpenedWorker,
  type OpenWorkerOptions,
  openWorker,
  runWorkerProcess,
  type WorkerProcessOptions,
} from './worker-process.js';
