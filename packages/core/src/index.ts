export { canonicalizeUrl, isTrackingParam, parseTargetUrl } from './canonical-url.js';
export {
  type AuthConfig,
  type CrawlfleetConfig,
  crawlfleetConfigSchema,
  DEFAULT_CONFIG_FILE,
  DEFAULT_TENANT,
  type FetchConfig,
  type JobsConfig,
  type LoadConfigOptions,
  type LoggedOutCheck,
  type LoginConfig,
  type LoginSuccessCheck,
  type LoginTokenConfig,
  loadConfig,
  type ProxyConfig,
  parseConfig,
  type QueueConfig,
  type RefreshConfig,
  type RenderConfig,
  type ResultsConfig,
  type RetentionConfig,
  type SessionsConfig,
  sessionsConfigSchema,
  type TenantConfig,
  tenantConfig,
} from './config.js';
export {
  type CrawlDefinition,
  crawlDefinitionSchema,
  FOLLOW_STRATEGIES,
  type LinksToAdmit,
  parseCrawlDefinition,
} from './crawl.js';
export {
  DEFAULT_PREFIX,
  DEFAULT_REDIS_URL,
  type Environment,
  parseDuration,
  readEnvironment,
  wholeNumberSetting,
} from './environment.js';
export { ConfigError, exitCodeOf, InputError, oneLine, RedisUnavailableError } from './errors.js';
export { checkCallerKey, deriveIdempotencyKey, type IdempotencyInput } from './idempotency.js';
export {
  checkName,
  describeZodError,
  type FetchJob,
  type FetchJobParse,
  fetchJobSchema,
  HTTP_METHODS,
  type HttpMethod,
  type JobCrawl,
  jobCrawlSchema,
  NAME_PATTERN,
  parseFetchJob,
} from './job.js';
export {
  CRAWL_QUEUE,
  DLQ_QUEUE,
  dlqJobId,
  isValidPrefix,
  type KeyLayout,
  keyLayout,
  MAX_SHARDS,
  parseSessionKey,
  queueOf,
  RENDER_QUEUE,
  type SessionKeys,
  type ShardKeys,
  shardTag,
  slotOf,
} from './keys.js';
export type { CrawlObserver } from './observer.js';
export { redactPii, redactPiiDeep } from './pii.js';
export {
  type ClusterUrl,
  type ConnectOptions,
  coalesceWrites,
  connectRedis,
  isCluster,
  isClusterUrl,
  mastersOf,
  openSessionRedis,
  parseClusterUrl,
  type RedisClient,
  redactRedisUrl,
  whenReady,
} from './redis.js';
export { awaitReplicas, type Replication } from './replication.js';
export { NODE_FLAGS } from './runtime.js';
export { checkShardCount } from './shard-count.js';
export { type PipelineAnswer, pipelineEach, slotGroups } from './slot-groups.js';
export { TurnBatch } from './turn-batch.js';
