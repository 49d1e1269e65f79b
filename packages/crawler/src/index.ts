export { BreakerGate } from './breaker-gate.js';
export {
  type CrawlHandler,
  type EnqueueRequest,
  type Handler,
  type HandlerContext,
  loadHandler,
} from './crawl-handler.js';
export { CrawlProcessor, type CrawlProcessorDeps } from './crawl-processor.js';
export { CrawlWorker, type CrawlWorkerOptions, DEFAULT_CONCURRENCY, type JobEvent } from './crawl-worker.js';
export { type DecideOptions, type Decision, decide } from './decide.js';
export { FrontierMover, type FrontierMoverOptions } from './frontier-mover.js';
export { DeadLetteredError, type JobOutcome, RetryLaterError } from './job-errors.js';
export { type JobIntake, OutboxBackpressure } from './outbox-backpressure.js';
export { PolitenessGate } from './politeness-gate.js';
export {
  DEFAULT_PROGRESS_MS,
  ProgressSummary,
  type ProgressSummaryOptions,
  progressEveryFromEnv,
} from './progress-summary.js';
export { ProxyPlan, ProxyPlans, proxyId } from './proxy-plan.js';
export { Settle, type SettleDeps, type Settled } from './settle.js';
export type { Failure, GateVerdict, HoldReason, JobVerdict } from './verdicts.js';
export {
  DEFAULT_GRACE_MS,
  type OpenedWorker,
  type OpenWorkerOptions,
  openWorker,
  runWorkerProcess,
  type WorkerProcessOptions,
} from './worker-process.js';
