import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError, InputError } from './errors.js';
import { describeZodError, NAME_PATTERN } from './job.js';
import { MAX_SHARDS } from './keys.js';

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
  )
  // "127.0.0.1:8080" would match nothing: an entry allows a host on every port.
  .refine(
    (entry) => !entry.includes(':') || isIP(entry.split('/')[0] ?? '') === 6,
    'takes a host without a port (an entry allows every port of the host)',
  );

/** Text that may name secrets: `${NAME}` (the environment) or `${file:/path}` (a mounted secret). */
const secretText = z.string().max(4096);

/** A JSON path into a login answer: `access`, `data.token`, `tokens.0.value`. */
const jsonPath = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$/, 'must be dotted field names, e.g. "access" or "data.token"');

/** A regular expression given as text, refused at load when it does not compile. */
const pattern = z
  .string()
  .min(1)
  .max(1024)
  .refine((source) => {
    try {
      new RegExp(source);
      return true;
    } catch {
      return false;
    }
  }, 'must be a valid regular expression');

/** A request header's name (RFC 9110 token). */
const headerName = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be a header name');

/** Headers of a login or refresh request: names checked, values may name secrets. */
const secretHeaders = z.record(headerName, secretText.regex(/^[^\r\n]*$/, 'must be one line'));

const statusList = z.array(z.number().int().min(100).max(599)).min(1).max(50);

/**
 * What a successful login looks like. Every given check must hold. Without one, a login holds
 * when it answered below 400 and (for a form login) did not land back on the login page.
 */
export const loginSuccessSchema = z.strictObject({
  /** Statuses of the final answer (after redirects) that mean success. */
  status: statusList.optional(),
  /** A cookie that must be in the session's jar for the login URL afterwards (a session id). */
  cookie: z.string().min(1).max(256).optional(),
  /** Text that must be on the page the login lands on. */
  text: z.string().min(1).max(1024).optional(),
  /** Text that must not be there ("Please enter a correct username and password"). */
  notText: z.string().min(1).max(1024).optional(),
});

/** Where the access token of a JSON login answer is, and how requests carry it. */
export const loginTokenSchema = z.strictObject({
  /** The token's path in the JSON answer. */
  path: jsonPath,
  /** The request header that carries it. */
  header: headerName.default('authorization'),
  prefix: z
    .string()
    .max(64)
    .regex(/^[^\r\n]*$/, 'must be one line')
    .default('Bearer '),
  /** The token's lifetime in seconds (`expires_in`); without it the login lasts `auth.ttlSeconds`. */
  expiresInPath: jsonPath.optional(),
  /** Where the refresh token is (for `auth.refresh`). */
  refreshPath: jsonPath.optional(),
  /**
   * Hosts the token is sent to (exact names, or `*.domain`). Default: the login URL's host only,
   * so a session that also fetches other hosts never hands them its token.
   */
  hosts: z.array(z.string().min(1).max(253)).max(100).optional(),
});

/**
 * How a session of a tenant logs in. Either `page` (a form login: the login page is fetched in
 * the session, its form found, its hidden fields such as CSRF tokens kept, `form` filled in and
 * submitted to the form's action) or `url` (one request with `form` or `json`). Values may name
 * secrets as `${NAME}` or `${file:/run/secrets/x}`; they are read at login time and never
 * queued, stored or logged.
 */
export const loginConfigSchema = z
  .strictObject({
    page: z.string().url().optional(),
    url: z.string().url().optional(),
    /** A CSS selector for the login form, when the page has several that hold the fields. */
    formSelector: z.string().min(1).max(512).optional(),
    /** Default: POST for `url`; the form's own method for `page`. */
    method: z.enum(['POST', 'PUT', 'GET']).optional(),
    form: z.record(z.string(), secretText).optional(),
    json: z.record(z.string(), z.unknown()).optional(),
    headers: secretHeaders.default({}),
    token: loginTokenSchema.optional(),
    success: loginSuccessSchema.optional(),
    /**
     * Log in with a browser instead of HTTP requests (a site whose login runs in JavaScript): the
     * login `page` is opened in Chromium as the session, each of `form`'s fields is filled (by its
     * `name`, or a CSS selector given as the key), `submit` is clicked (default: the form's submit
     * button), and the page it lands on is checked with `success`. The cookies it ends with are
     * the session's, for HTTP and render jobs alike.
     */
    browser: z
      .strictObject({
        /** A CSS selector of what to click to log in; default: the first submit button of the form. */
        submit: z.string().min(1).max(512).optional(),
        /** A CSS selector that appears once the login went through (waited for, up to `render.timeoutMs`). */
        waitFor: z.string().min(1).max(512).optional(),
      })
      .optional(),
  })
  .refine((login) => (login.page === undefined) !== (login.url === undefined), 'give page or url, not both')
  .refine(
    (login) => login.browser === undefined || (login.page !== undefined && login.form !== undefined),
    'a browser login takes page (the login page) and form (the fields to fill)',
  )
  .refine((login) => !(login.form && login.json), 'give form or json, not both')
  .refine((login) => login.page === undefined || login.json === undefined, 'a form login (page) takes form, not json')
  .refine((login) => login.page === undefined || login.token === undefined, 'a token login takes url, not page')
  .refine(
    (login) => login.page === undefined || login.method !== 'GET',
    'a form login never sends GET: credentials do not go in a URL',
  );

/** Signs, besides 401 and a 403 that is not a challenge, that a session is logged out. */
export const loggedOutSchema = z.strictObject({
  status: statusList.optional(),
  /** A regular expression the final URL (after redirects) matches when it is a login page. */
  url: pattern.optional(),
  /** Text in the page that only a logged-out visitor sees. */
  text: z.string().min(1).max(1024).optional(),
});

/** How an access token is renewed with the refresh token (`{refresh}` in a value stands for it). */
export const refreshConfigSchema = z
  .strictObject({
    url: z.string().url(),
    method: z.enum(['POST', 'PUT', 'GET']).default('POST'),
    form: z.record(z.string(), secretText).optional(),
    json: z.record(z.string(), z.unknown()).optional(),
    headers: secretHeaders.default({}),
    /** The new access token's path; default: `login.token.path`. */
    path: jsonPath.optional(),
    /** A new refresh token's path, when the site rotates them; default: `login.token.refreshPath`. */
    refreshPath: jsonPath.optional(),
    /** Default: `login.token.expiresInPath`. */
    expiresInPath: jsonPath.optional(),
  })
  .refine((refresh) => !(refresh.form && refresh.json), 'give form or json, not both');

export const authConfigSchema = z
  .strictObject({
    login: loginConfigSchema,
    /** How long a login is taken to last when the site does not say (cookie expiry, `expires_in`). */
    ttlSeconds: z.number().int().min(1).default(3600),
    loggedOut: loggedOutSchema.optional(),
    refresh: refreshConfigSchema.optional(),
    /**
     * A login (or token) that expires within this margin is renewed before the job's request,
     * never mid-request; at most a quarter of the login's lifetime.
     */
    refreshMarginSeconds: z.number().int().min(0).max(86_400).default(60),
    /** A cookie the site wants echoed in a header on requests that change things (Django, Angular). */
    csrf: z
      .strictObject({
        cookie: z.string().min(1).max(256),
        header: headerName,
      })
      .optional(),
    /** A cookie whose expiry is the login's (a session id); default: the earliest the login set. */
    sessionCookie: z.string().min(1).max(256).optional(),
    /**
     * After a refused login, the session does not try again for `cooldownSeconds` (doubling with
     * each refusal in a row, up to `maxCooldownSeconds`). Its jobs that need a login meanwhile go
     * to the DLQ as `auth_failed` (`jobs: "dead_letter"`) or are held until it ends (`"wait"`).
     */
    refused: z
      .strictObject({
        cooldownSeconds: z.number().int().min(1).max(86_400).default(300),
        maxCooldownSeconds: z.number().int().min(1).max(604_800).default(3600),
        jobs: z.enum(['dead_letter', 'wait']).default('dead_letter'),
      })
      .prefault({}),
  })
  .refine((auth) => auth.refresh === undefined || auth.login.token !== undefined, {
    message: 'refresh needs login.token (where the access token is)',
    path: ['refresh'],
  });

/**
 * A forward proxy: `http://host:port` or `https://host:port`, with credentials as
 * `http://user:${PROXY_PASSWORD}@host:port` (`${NAME}` from the environment, `${file:/path}` from
 * a mounted secret), read when the proxy is first used and never queued, stored or logged.
 */
const proxyUrl = z
  .string()
  .max(2048)
  .refine((text) => {
    try {
      const url = new URL(text.replace(/\$\{[^}]*\}/g, 'x'));
      return (url.protocol === 'http:' || url.protocol === 'https:') && url.pathname === '/' && url.search === '';
    } catch {
      return false;
    }
  }, 'must be http://[user:password@]host:port or https://..., with no path');

/** A tenant's proxies: a default pool, and pools for some target hosts (first match wins). */
export const proxyConfigSchema = z.strictObject({
  urls: z.array(proxyUrl).max(10_000).default([]),
  /**
   * Resolve target names here too, and refuse private and special addresses before the request
   * (the proxy resolves them otherwise, and only address literals are checked): one DNS lookup
   * per request and redirect, for proxies that can reach a private network.
   */
  resolveLocally: z.boolean().default(false),
  routes: z
    .array(
      z.strictObject({
        /** Target hosts: exact names, or `*.domain`. */
        hosts: z
          .array(
            z
              .string()
              .min(1)
              .max(253)
              .regex(/^(\*\.)?[A-Za-z0-9.-]+$/, 'must be a host name or *.domain'),
          )
          .min(1)
          .max(1000),
        urls: z.array(proxyUrl).min(1).max(10_000),
      }),
    )
    .max(1000)
    .default([]),
});

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
  /**
   * The longest Retry-After obeyed. A site asking for more (a year, say) is not obeyed blindly:
   * the page goes to the DLQ as compliance_blocked/retry_after_too_long, the host is held for
   * this long only, and an alert is raised.
   */
  maxRetryAfterSeconds: z.number().int().min(1).max(604_800).default(3600),
  /** How a session of this tenant logs in, notices it was logged out, and renews its login. */
  auth: authConfigSchema.optional(),
  /**
   * How a session of this tenant presents itself. `crawler` (default): the tenant's user agent and
   * headers. `browser`: on creation each session gets a consistent browser-like header profile
   * (user agent, Accept, Accept-Language, Accept-Encoding, `sec-ch-ua*`, in a browser's order) from
   * a header generator, kept in its profile slate and sent with every request; `userAgent`, when
   * set, still pins the user agent. robots.txt is always read for the tenant's own user agent.
   */
  identity: z
    .strictObject({
      profile: z.enum(['crawler', 'browser']).default('crawler'),
      /** Languages a browser profile asks for (Accept-Language), e.g. `en-US`, `de-DE`. */
      locales: z
        .array(
          z
            .string()
            .min(2)
            .max(35)
            .regex(/^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$/, 'must be a language tag such as en-US'),
        )
        .min(1)
        .max(10)
        .default(['en-US']),
      /** The browsers a browser profile is drawn from (and so its TLS family): pin one to pin the family. */
      browsers: z
        .array(z.enum(['chrome', 'firefox', 'safari', 'edge']))
        .min(1)
        .max(4)
        .default(['chrome', 'firefox', 'safari', 'edge']),
    })
    .prefault({}),
  /**
   * Forward proxies. A session is bound to one proxy of the pool its target's host routes to:
   * every request of the session, on every worker, goes through it. Jobs without a session take
   * the pool's proxies in turn.
   */
  proxy: proxyConfigSchema.optional(),
  /** How this tenant's render jobs (`--render`) load pages in the browser. */
  render: z
    .strictObject({
      /**
       * Resource types the browser does not load for this tenant's pages (they are aborted before
       * any request): `image`, `media`, `font`, `stylesheet`. Default: none (the page as a browser sees it).
       */
      block: z
        .array(z.enum(['image', 'media', 'font', 'stylesheet']))
        .max(4)
        .default([]),
    })
    .prefault({}),
});

/** How render jobs (`--render`) are rendered by browser workers (`crawlfleet worker --browsers N`). */
export const renderConfigSchema = z.strictObject({
  /** The whole render (navigation, waiting, the handler's work on the page) is bounded by this. */
  timeoutMs: z.number().int().min(1_000).max(600_000).default(30_000),
  /** When a page counts as loaded: `load` (default), `domcontentloaded`, `networkidle` or `commit`. */
  waitUntil: z.enum(['load', 'domcontentloaded', 'networkidle', 'commit']).default('load'),
  /**
   * The memory one browser (Chromium and its renderers) may use, in MiB: above it the worker stops
   * opening pages in it, lets open ones finish, and starts a fresh browser.
   */
  maxBrowserMemoryMb: z.number().int().min(128).max(65_536).default(2_048),
  /** Store a full-page PNG screenshot of each rendered page in the body store (needs `results.bodyStore`). */
  screenshot: z.boolean().default(false),
  /** The localStorage kept per origin of a session, in bytes of JSON; larger origins are not kept. */
  maxStorageBytesPerOrigin: z
    .number()
    .int()
    .min(1024)
    .max(16 * MiB)
    .default(1 * MiB),
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

export const queueConfigSchema = z.strictObject({
  /**
   * How many hash tags the job path is spread over (crawl and render queues, results outbox,
   * ledger, frontier, host pacing): on a Redis Cluster, one per master spreads the load over them.
   * Every process of a fleet must agree; a fleet refuses a process with another count.
   */
  shards: z.number().int().min(1).max(MAX_SHARDS).default(1),
});

export const retentionConfigSchema = z.strictObject({
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

/**
 * The results outbox: the stream every result is written to, kept until every registered sink
 * (`crawlfleet sink run`) has acknowledged it, and never trimmed past that.
 */
export const resultsConfigSchema = z.strictObject({
  /**
   * When the outbox holds this many entries, workers stop taking jobs (they finish what they
   * hold) until sinks catch up. No result is dropped to make room.
   */
  outboxMaxLen: z.number().int().min(10).max(100_000_000).default(100_000),
  /** The same, for the bytes of the results the outbox holds (bodies kept inline count in full). */
  outboxMaxBytes: z
    .number()
    .int()
    .min(MiB)
    .default(512 * MiB),
  /**
   * With a `bodyStore`, bodies larger than this go to the store and the outbox carries a
   * reference. Without one, every body stays inline.
   */
  inlineBodyBytes: z
    .number()
    .int()
    .min(0)
    .max(64 * MiB)
    .default(16 * 1024),
  /**
   * Where large bodies go, content-addressed: `file:/shared/bodies` (one machine or a shared
   * volume) or `s3://bucket/prefix` (the `AWS_*` variables; `AWS_ENDPOINT_URL` for a non-AWS store).
   */
  bodyStore: z
    .string()
    .regex(/^(file:.+|s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?)$/, 'must be file:DIR or s3://bucket/prefix')
    .optional(),
});

/** Settings that are gone, with what replaced them: refused with a one-line error. */
const REPLACED_SETTINGS: ReadonlyArray<{ path: readonly [string, string]; replacement: string }> = [
  {
    path: ['retention', 'resultsMaxLen'],
    replacement:
      'results are no longer trimmed by count; the outbox keeps each one until every sink has it, and results.outboxMaxLen bounds it',
  },
];

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
  queue: queueConfigSchema.prefault({}),
  retention: retentionConfigSchema.prefault({}),
  results: resultsConfigSchema.prefault({}),
  sessions: sessionsConfigSchema.prefault({}),
  breakers: breakersConfigSchema.prefault({}),
  render: renderConfigSchema.prefault({}),
});

export type TenantConfig = z.infer<typeof tenantConfigSchema>;
export type FetchConfig = z.infer<typeof fetchConfigSchema>;
export type JobsConfig = z.infer<typeof jobsConfigSchema>;
export type QueueConfig = z.infer<typeof queueConfigSchema>;
export type RetentionConfig = z.infer<typeof retentionConfigSchema>;
export type ProxyConfig = z.infer<typeof proxyConfigSchema>;
export type ResultsConfig = z.infer<typeof resultsConfigSchema>;
export type SessionsConfig = z.infer<typeof sessionsConfigSchema>;
export type RenderConfig = z.infer<typeof renderConfigSchema>;
export type LoginConfig = z.infer<typeof loginConfigSchema>;
export type AuthConfig = z.infer<typeof authConfigSchema>;
export type RefreshConfig = z.infer<typeof refreshConfigSchema>;
export type LoginTokenConfig = z.infer<typeof loginTokenSchema>;
export type LoginSuccessCheck = z.infer<typeof loginSuccessSchema>;
export type LoggedOutCheck = z.infer<typeof loggedOutSchema>;

export interface CrawlfleetConfig extends z.infer<typeof crawlfleetConfigSchema> {
  /** Where it was read from, for messages; undefined when no file was used. */
  source?: string | undefined;
}

export const DEFAULT_TENANT = 'default';
export const DEFAULT_CONFIG_FILE = 'crawlfleet.config.json';

/** Validates a config object (already parsed JSON). */
export function parseConfig(value: unknown, source?: string): CrawlfleetConfig {
  for (const { path, replacement } of REPLACED_SETTINGS) {
    const section = (value as Record<string, unknown> | null)?.[path[0]];
    if (typeof section === 'object' && section !== null && Object.hasOwn(section, path[1]))
      throw new ConfigError(`${source ?? 'config'}: ${path.join('.')} is no longer supported: ${replacement}`);
  }
  const result = crawlfleetConfigSchema.safeParse(value);
  if (!result.success) {
    throw new ConfigError(`${source ?? 'config'}: ${describeZodError(result.error)}`);
  }
  if (result.data.render.screenshot && result.data.results.bodyStore === undefined)
    throw new ConfigError(
      `${source ?? 'config'}: render.screenshot needs results.bodyStore (screenshots go to the body store, never into Redis)`,
    );
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
  const which =
    known.length > 1
      ? `${config.source ?? 'the config'} has tenants ${known.join(', ')}`
      : config.source === undefined
        ? `no config file is loaded, so only the tenant "${DEFAULT_TENANT}" exists`
        : `${config.source} has only the tenant "${DEFAULT_TENANT}"`;
  throw new InputError('unknown_tenant', `unknown tenant ${JSON.stringify(name)}: ${which}`);
}
