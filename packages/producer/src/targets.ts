import {
  canonicalizeUrl,
  checkCallerKey,
  deriveIdempotencyKey,
  type FetchJob,
  HTTP_METHODS,
  InputError,
  type JobCrawl,
  parseFetchJob,
  parseTargetUrl,
} from '@crawlfleet/core';

/** Where a person wrote a target: a command-line argument, or a line of a file or stdin. */
export interface TargetSource {
  /** `argument 2`, `urls.txt`, `stdin`. */
  name: string;
  /** 1-based, comments and blank lines counted; absent for an argument. */
  line?: number | undefined;
}

/** One thing to fetch, as a person or a file names it. */
export interface SubmitTarget {
  url: string;
  method?: string | undefined;
  headers?: Record<string, string> | undefined;
  body?: string | undefined;
  /** A caller-chosen idempotency key; derived when absent. */
  key?: string | undefined;
  /** Where it was written, for messages; absent for targets a program made. */
  source?: TargetSource | undefined;
}

/** `urls.txt line 3`, `argument 2`. */
export function describeSource(source: TargetSource): string {
  return source.line === undefined ? source.name : `${source.name} line ${source.line}`;
}

export interface JobContext {
  tenant: string;
  sessionId?: string | undefined;
  submittedAt: string;
  /** The named crawl the job belongs to: its depth, label and the page that linked to it. */
  crawl?: JobCrawl | undefined;
  /** Rendered in a browser (`--render`): the job goes to the render queue. */
  render?: boolean | undefined;
}

/**
 * Request headers that carry credentials. Job data sits in the queue (and in DLQ entries) in
 * plain text, so these are refused: a session or a tenant's login hook holds credentials
 * encrypted instead.
 */
const CREDENTIAL_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie', 'x-api-key', 'x-auth-token']);

/**
 * Turns a target into a queue job: validates the URL and method, derives the key, and checks the
 * job with the schema the worker parses it with, so nothing a worker would refuse is enqueued.
 */
export function buildFetchJob(target: SubmitTarget, context: JobContext): FetchJob {
  const url = parseTargetUrl(target.url);
  for (const name of Object.keys(target.headers ?? {})) {
    if (CREDENTIAL_HEADERS.has(name.toLowerCase())) {
      throw new InputError(
        'credential_header',
        `the ${name} header would be stored in plain text with the job: use --session with a tenant login hook instead`,
      );
    }
  }
  const method = (target.method ?? 'GET').toUpperCase();
  if (!(HTTP_METHODS as readonly string[]).includes(method)) {
    throw new InputError('invalid_method', `unsupported method ${JSON.stringify(target.method)} for ${url.href}`);
  }
  if (context.render === true && method !== 'GET')
    throw new InputError(
      'invalid_method',
      `a render job loads a page in a browser: GET only, not ${method} (${url.href})`,
    );
  const idempotencyKey =
    target.key !== undefined
      ? checkCallerKey(target.key)
      : deriveIdempotencyKey({
          tenant: context.tenant,
          method,
          canonicalUrl: canonicalizeUrl(url),
          body: target.body,
          crawl: context.crawl?.name,
        });
  const checked = parseFetchJob({
    v: 1,
    url: url.href,
    method,
    ...(target.headers === undefined ? {} : { headers: target.headers }),
    ...(target.body === undefined ? {} : { body: target.body }),
    tenant: context.tenant,
    ...(context.sessionId === undefined ? {} : { sessionId: context.sessionId }),
    idempotencyKey,
    submittedAt: context.submittedAt,
    ...(context.crawl === undefined ? {} : { crawl: context.crawl }),
    ...(context.render === true ? { render: true } : {}),
  });
  if (!checked.ok) throw new InputError('invalid_job', checked.reason);
  return checked.job;
}
