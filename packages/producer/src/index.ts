export { addJobCounts, BACKOFF_TYPE, CrawlQueues, queueEntry } from './crawl-queues.js';
export {
  InvalidTargetsError,
  PartialSubmitError,
  type SubmitReport,
  type TargetProblem,
} from './errors.js';
export { type PrepareOptions, prepareJobs } from './prepare.js';
export { Producer, type SubmitOptions } from './producer.js';
export { parseTargetLines, readTargetLines, type TargetList } from './target-lines.js';
export { buildFetchJob, describeSource, type JobContext, type SubmitTarget, type TargetSource } from './targets.js';
