import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError, InputError } from './errors.js';
import { describeZodError, NAME_PATTERN } from './job.js';

const MiB = 1024 * 1024;

/** A CIDR range whose address is an IP and whose prefix fits its family. */
function isCidr(entry: string): boolean {
  const [address = '', bits = ''] = entry.split('/');
  const family = isIP(address);
  return family !== 0 && /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}

/** `host.example`, `*.example.com`, `10.0.0.5`, `::1`, `192.168.0.0/16`. */
const allowHostEntry = z
  .string()
  .min(1)
  .max(253)
  .regex(/^(\*\.)?[A-Za-z0-9.:_-]+(\/\d{1,3})?$/, 'must be a host name, *.domain, an IP address or a CIDR range')
  .refine(
    (entry) => !entry.includes('/') || isCidr(entry),
    'a CIDR range needs an IP address and a prefix length that fits it',
  );

/**
 * How a tenant's session logs in again after a 401 (or a 403 that is not a challenge). Values
 * may name environment variables as `${NAME}`; they are read at login time and never stored.
 */
export const loginConfigSchema = z
  .strictObject({
    url: z.string().url(),
    method: z.enum(['POST', 'PUT', 'GET']).default('POST'),
    form: z.record(z.string(), z.string()).optional(),
    json: z.record(z.string(), z.unknown()).optional(),
    headers: z.record(z.string(), z.string()).default({}),
  })
  .refine((login) => !(login.form && login.json), 'give form or json, not both');

export const tenantConfigSchema = z.strictObject({
  /**
   * Hosts this tenant may crawl even though they resolve to loopback, private, link-local or
   * metadata addresses (which are refused by default). Public hosts need no entry.
   */
  allowHosts: z.array(allowHostEntry).default([]),
  /** Overrides `fetch.userAgent` for this tenant. */
  userAgent: z.string().min(1).max(512).optional(),
  /** Extra request headers for every job of this tenant (a job's own headers win). */
  headers: z.record(z.string(), z.string()).default({}),
  /** Replace e-mail addresses, phone numbers and IP addresses in stored bodies and headers. */
  redactPii: z.boolean().default(true),
  /** Whether robots.txt rules (Disallow, Crawl-delay) apply to this tenant's jobs. */
  robots: z.enum(['respect', 'ignore']).default('respect'),
  /** The least time between two requests to one host, across the whole fleet, in ms. */
  hostDelayMs: z.number().int().min(0).max(3_600_000).default(0),
  /** The re-auth hook: how a session of this tenant logs in. */
  auth: z
    .strictObject({
      login: loginConfigSchema,
      /** How long a login is taken to last when the site does not say. */
      ttlSeconds: z.number().int().min(1).default(3600),
    })
    .optional(),
});

export const fetchConfigSchema = z.strictObject({
  /** Whole-fetch deadline, redirects included, counted from when the first request has a socket. */
  timeoutMs: z.number().int().min(100).max(600_000).default(30_000),
  connectTimeoutMs: z.number().int().min(50).max(120_000).default(10_000),
  maxRedirects: z.number().int().min(0).max(30).default(10),
  /** A response body larger than this fails the job as `body_too_large` (non-recoverable). */
  maxBodyBytes: z
    .number()
    .int()
    .min(1024)
    .max(512 * MiB)
    .default(16 * MiB),
  /** A stored result keeps at most this much of the body; `bodyBytes` keeps the real size. */
  resultBodyBytes: z
    .number()
    .int()
    .min(0)
    .max(64 * MiB)
    .default(2 * MiB),
  userAgent: z.string().min(1).max(512).default('crawlfleet/0.1'),
  /** Keep-alive sockets per origin and worker process. */
  maxSocketsPerHost: z.number().int().min(1).max(1024).default(32),
});

export const jobsConfigSchema = z.strictObject({
  /** Retries after the first attempt for recoverable failures. */
  retries: z.number().int().min(0).max(25).default(3),
  backoffBaseMs: z.number().int().min(10).max(600_000).default(1_000),
  backoffMaxMs: z.number().int().min(10).max(3_600_000).default(60_000),
});

export const retentionConfigSchema = z.strictObject({
  /** The results stream keeps about this many newest entries. */
  resultsMaxLen: z.number().int().min(10).max(100_000_000).default(100_000),
  /** How long a finished idempotency key is remembered (a resubmission is a duplicate). */
  ledgerTtlSeconds: z
    .number()
    .int()
    .min(60)
    .default(30 * 24 * 3600),
  /** The audit stream keeps about this many newest events. */
  auditMaxLen: z.number().int().min(10).max(100_000_000).default(100_000),
  /** Finished BullMQ jobs kept for inspection; the ledger and results outlive them. */
  completedJobs: z.number().int().min(0).default(1_000),
  failedJobs: z.number().int().min(0).default(5_000),
});

const day = 24 * 3600;

export const sessionsConfigSchema = z.strictObject({
  cookiesTtlSeconds: z
    .number()
    .int()
    .min(1)
    .default(30 * day),
  profileTtlSeconds: z
    .number()
    .int()
    .min(1)
    .default(30 * day),
  metaTtlSeconds: z
    .number()
    .int()
    .min(1)
    .default(30 * day),
  workflowTtlSeconds: z.number().int().min(1).default(3600),
  /**
   * How often a worker writes the meta counters (jobs, errors, last used) of jobs that changed
   * nothing else in their session. Such a job adds its counts in memory; they are written with
   * the session's next commit, on this timer, and when the worker drains. 0 writes them with
   * every job (one more command per job). A worker killed with SIGKILL loses at most this much.
   */
  metaFlushMs: z.number().int().min(0).max(600_000).default(5_000),
  /**
   * Reuse a healthy session's hydrate while nothing it read has changed, kept true by Redis's
   * client-side caching (`CLIENT TRACKING`, Redis 6+): a hot session's job then sends no hydrate.
   * Another worker's change reaches this one as an invalidation, within a round trip. A Redis that
   * refuses tracking gets a warning and plain hydrates. False always reads Redis.
   */
  trackHydrates: z.boolean().default(true),
  /** Tries of a commit that keeps meeting newer versions before the job is retried later. */
  maxCommitAttempts: z.number().int().min(1).max(1000).default(100),
  /**
   * Cookies never stored in a session's jar, besides the built-in trackers (_ga, _gid, _fbp,
   * _gcl_*, utm_*, ...): exact names, or prefixes ending in `*`.
   */
  trackingCookies: z.array(z.string().min(1).max(128)).default([]),
  /** How long a session stays quarantined after a WAF or CAPTCHA challenge. */
  quarantineSeconds: z.number().int().min(1).default(3600),
  /** This many 429 answers to one session within the window make it compliance_blocked. */
  max429: z.number().int().min(1).default(5),
  rateLimitWindowSeconds: z.number().int().min(1).default(600),
  /** How long one worker may hold a session's login lease. */
  reauthLeaseMs: z.number().int().min(100).max(120_000).default(15_000),
});

export const breakersConfigSchema = z.strictObject({
  /** Failures of one session, with no success between them, that open its breaker. */
  failureThreshold: z.number().int().min(1).default(5),
  /** How long an open breaker holds the session's jobs back before one probe may try. */
  resetTimeoutMs: z.number().int().min(100).default(30_000),
  /** Breakers each worker keeps (least recently used go first). */
  maxSessionsPerWorker: z.number().int().min(1).default(1_000),
});

export const crawlfleetConfigSchema = z.strictObject({
  $schema: z.string().optional(),
  tenants: z
    .record(z.string().regex(NAME_PATTERN, 'tenant names are 1-64 of A-Z a-z 0-9 . _ -'), tenantConfigSchema)
    .default({}),
  fetch: fetchConfigSchema.prefault({}),
  jobs: jobsConfigSchema.prefault({}),
  retention: retentionConfigSchema.prefault({}),
  sessions: sessionsConfigSchema.prefault({}),
  breakers: breakersConfigSchema.prefault({}),
});

export type TenantConfig = z.infer<typeof tenantConfigSchema>;
export type FetchConfig = z.infer<typeof fetchConfigSchema>;
export type JobsConfig = z.infer<typeof jobsConfigSchema>;
export type RetentionConfig = z.infer<typeof retentionConfigSchema>;
export type SessionsConfig = z.infer<typeof sessionsConfigSchema>;
export type LoginConfig = z.infer<typeof loginConfigSchema>;

export interface CrawlfleetConfig extends z.infer<typeof crawlfleetConfigSchema> {
  /** Where it was read from, for messages; undefined when no file was used. */
  source?: string | undefined;
}

export const DEFAULT_TENANT = 'default';
export const DEFAULT_CONFIG_FILE = 'crawlfleet.config.json';

/** Validates a config object (already parsed JSON). */
export function parseConfig(value: unknown, source?: string): CrawlfleetConfig {
  const result = crawlfleetConfigSchema.safeParse(value);
  if (!result.success) {
    throw new ConfigError(`${source ?? 'config'}: ${describeZodError(result.error)}`);
  }
  return { ...result.data, source };
}

export interface LoadConfigOptions {
  /** `--config`; wins over the environment. */
  path?: string | undefined;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/**
 * Loads the config: `--config`, else `CRAWLFLEET_CONFIG`, else `./crawlfleet.config.json` when
 * it exists, else the defaults (one tenant, `default`). A named file that is missing is an error.
 */
export function loadConfig(options: LoadConfigOptions = {}): CrawlfleetConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const named = options.path ?? (env.CRAWLFLEET_CONFIG || undefined);
  const path = named !== undefined ? resolve(cwd, named) : resolve(cwd, DEFAULT_CONFIG_FILE);
  if (named === undefined && !existsSync(path)) return parseConfig({});
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (error as Error).message;
    throw new ConfigError(`config ${path}: ${reason}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`config ${path}: not valid JSON (${(error as Error).message})`);
  }
  return parseConfig(json, `config ${path}`);
}

const defaultTenant = tenantConfigSchema.parse({});

/** The named tenant's settings; `default` exists even when the config does not list it. */
export function tenantConfig(config: CrawlfleetConfig, name: string): TenantConfig {
  // Own entries only: `constructor` or `__proto__` must not resolve to Object's members.
  const tenant = Object.hasOwn(config.tenants, name) ? config.tenants[name] : undefined;
  if (tenant !== undefined) return tenant;
  if (name === DEFAULT_TENANT) return defaultTenant;
  const known = [DEFAULT_TENANT, ...Object.keys(config.tenants).filter((t) => t !== DEFAULT_TENANT)];
  throw new InputError(
    'unknown_tenant',
    `unknown tenant ${JSON.stringify(name)}: ${config.source ?? 'no config file is loaded'} knows ${known.join(', ')}`,
  );
}
