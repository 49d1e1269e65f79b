export { type BackoffOptions, fullJitterDelay, retryDelay } from './backoff.js';
export { classifyError, classifyResponse, type ResponseFacts } from './classify.js';
export {
  type Classification,
  ComplianceBlockedError,
  CrawlFailure,
  FAILURE_CLASSES,
  type FailureClass,
  NonRecoverableError,
  RecoverableError,
  type ResponseSummary,
} from './errors.js';
export { parseRetryAfter } from './retry-after.js';
