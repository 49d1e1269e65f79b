import { z } from 'zod';
import { InputError } from './errors.js';

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

/** Tenant and session names end up in Redis key names and metrics labels: keep them plain. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Checks a tenant or session name given on the command line; `what` names the flag in the error. */
export function checkName(what: string, value: string): string {
  if (!NAME_PATTERN.test(value)) {
    throw new InputError('invalid_session', `${what} must be 1-64 of A-Z a-z 0-9 . _ -, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** W3C trace context carried from the producer to the worker. */
export const traceContextSchema = z.object({
  traceparent: z.string().max(128),
  tracestate: z.string().max(512).optional(),
});

/** The longest URL a job may carry, as serialized (percent-escapes included). */
const MAX_URL_LENGTH = 8192;
/** The longest request body a job may carry. */
const MAX_BODY_LENGTH = 1024 * 1024;

/**
 * Header names and values Node's HTTP client sends (its `checkIsHttpToken` and
 * `checkInvalidHeaderChar`): a job with any other would fail its fetch on every attempt.
 */
const HEADER_NAME = /^[\^_`a-zA-Z\-0-9!#$%&'*+.|~]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** What a job of a named crawl carries: its crawl, how deep it is, its label and the page that linked to it. */
export const jobCrawlSchema = z.object({
  name: z.string().regex(NAME_PATTERN),
  /** Seeds are 0; a page's links are one deeper. */
  depth: z.number().int().min(0).max(1000),
  /** A handler's route for the page; none: the default route. */
  label: z.string().min(1).max(64).optional(),
  /** The idempotency key of the page this link was found on; none for a seed. */
  parent: z.string().min(1).max(200).optional(),
  /** What a handler passed along with the URL it enqueued (JSON, 16 KiB at most). */
  userData: z
    .record(z.string(), z.unknown())
    .refine((data) => JSON.stringify(data).length <= 16_384, 'userData is larger than 16 KiB as JSON')
    .optional(),
});

export type JobCrawl = z.infer<typeof jobCrawlSchema>;

/**
 * One fetch job as it sits in the `crawl` queue. Version 1. The worker parses every job it
 * takes with this schema (a payload that does not fit goes to the DLQ), and the producer checks
 * every job it builds with it, so `submit` refuses what a worker would.
 */
export const fetchJobSchema = z.object({
  v: z.literal(1),
  url: z.string().url().max(MAX_URL_LENGTH, `longer than ${MAX_URL_LENGTH} characters`),
  method: z.enum(HTTP_METHODS),
  headers: z
    .record(z.string(), z.string().regex(HEADER_VALUE, 'not a valid HTTP header value'))
    // Checked here rather than as the record's key schema, whose issue would only say "Invalid key".
    .superRefine((headers, context) => {
      for (const name of Object.keys(headers)) {
        if (!HEADER_NAME.test(name))
          context.addIssue({ code: 'custom', path: [name], message: 'not a valid HTTP header name' });
      }
    })
    .optional(),
  body: z.string().max(MAX_BODY_LENGTH, `longer than ${MAX_BODY_LENGTH} characters`).optional(),
  tenant: z.string().regex(NAME_PATTERN),
  sessionId: z.string().regex(NAME_PATTERN).optional(),
  idempotencyKey: z.string().min(1).max(200),
  submittedAt: z.string().datetime(),
  /** Set on a job put back by a DLQ replay: its key may have succeeded meanwhile. */
  replayedAt: z.string().datetime().optional(),
  trace: traceContextSchema.optional(),
  /** Set on a job of a named crawl (`submit --crawl`, or a link one of its pages yielded). */
  crawl: jobCrawlSchema.optional(),
  /**
   * Rendered in a browser (`--render`): the job goes to the render queue, taken only by browser
   * workers (`crawlfleet worker --browsers N`). Its idempotency key is the page's, whether
   * rendered or fetched: a page is stored once either way.
   */
  render: z.literal(true).optional(),
});

export type FetchJob = z.infer<typeof fetchJobSchema>;

export type FetchJobParse = { ok: true; job: FetchJob } | { ok: false; reason: string };

/** Parses job data; on failure, says which field is wrong in one line. */
export function parseFetchJob(data: unknown): FetchJobParse {
  const result = fetchJobSchema.safeParse(data);
  if (result.success) return { ok: true, job: result.data };
  return { ok: false, reason: describeZodError(result.error) };
}

/** `field.path: message` for the first issue, the way every edge of crawlfleet reports input. */
export function describeZodError(error: z.ZodError): string {
  const issue = error.issues[0];
  if (issue === undefined) return 'invalid value';
  const path = issue.path.length === 0 ? '(root)' : issue.path.map(String).join('.');
  return `${path}: ${issue.message}`;
}
