export { BreakerGate } from './breaker-gate.js';
export { CrawlProcessor, type CrawlProcessorDeps } from './crawl-processor.js';
export { CrawlWorker, type CrawlWorkerOptions, DEFAULT_CONCURRENCY, type JobEvent } from './crawl-worker.js';
export { DeadLetteredError, type JobOutcome, RetryLaterError } from './job-errors.js';
export { PolitenessGate, type Refusal } from './politeness-gate.js';
export {
  DEFAULT_PROGRESS_MS,
  ProgressSummary,
  type ProgressSummaryOptions,
  progressEveryFromEnv,
} from './progress-summary.js';
export {
  DEFAULT_GRACE_MS,
  type OpenedWorker,
  type OpenWorkerOptions,
  openWorker,
  runWorkerProcess,
  type WorkerProcessOptions,
} from './worker-process.js';
