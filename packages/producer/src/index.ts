export {
  BACKOFF_TYPE,
  PartialSubmitError,
  Producer,
  prepareJobs,
  type SubmitOptions,
  type SubmitReport,
} from './producer.js';
export { buildFetchJob, type JobContext, parseTargetLines, type SubmitTarget } from './targets.js';
