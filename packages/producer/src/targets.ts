import {
  canonicalizeUrl,
  checkCallerKey,
  deriveIdempotencyKey,
  describeZodError,
  type FetchJob,
  HTTP_METHODS,
  InputError,
  parseTargetUrl,
} from '@crawlfleet/core';
import { z } from 'zod';

/** One thing to fetch, as a person or a file names it. */
export interface SubmitTarget {
  url: string;
  method?: string | undefined;
  headers?: Record<string, string> | undefined;
  body?: string | undefined;
  /** A caller-chosen idempotency key; derived when absent. */
  key?: string | undefined;
}

const targetLineSchema = z.strictObject({
  url: z.string(),
  method: z.string().optional(),
  headers: z.record(z.string(), z.string()).optional(),
  body: z.string().optional(),
  key: z.string().optional(),
});

/**
 * Reads a URL list: one URL per line, or one JSON object per line
 * (`{"url":..., "method":..., "headers":..., "body":..., "key":...}`). Blank lines and lines
 * starting with `#` are skipped. Errors name the line.
 */
export function parseTargetLines(text: string, source = 'input'): SubmitTarget[] {
  const targets: SubmitTarget[] = [];
  const lines = text.split(/\r?\n/);
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (!line.startsWith('{')) {
      targets.push({ url: line });
      continue;
    }
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      throw new InputError('invalid_target', `${source} line ${index + 1}: not valid JSON`);
    }
    const parsed = targetLineSchema.safeParse(json);
    if (!parsed.success) {
      throw new InputError('invalid_target', `${source} line ${index + 1}: ${describeZodError(parsed.error)}`);
    }
    targets.push(parsed.data);
  }
  return targets;
}

export interface JobContext {
  tenant: string;
  sessionId?: string | undefined;
  submittedAt: string;
}

/**
 * Request headers that carry credentials. Job data sits in the queue (and in DLQ entries) in
 * plain text, so these are refused: a session or a tenant's login hook holds credentials
 * encrypted instead.
 */
const CREDENTIAL_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie', 'x-api-key', 'x-auth-token']);

/** Turns a target into a queue job: validates the URL and method, derives the key. */
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
  const idempotencyKey =
    target.key !== undefined
      ? checkCallerKey(target.key)
      : deriveIdempotencyKey({ tenant: context.tenant, method, canonicalUrl: canonicalizeUrl(url), body: target.body });
  return {
    v: 1,
    url: url.href,
    method: method as FetchJob['method'],
    ...(target.headers === undefined ? {} : { headers: target.headers }),
    ...(target.body === undefined ? {} : { body: target.body }),
    tenant: context.tenant,
    ...(context.sessionId === undefined ? {} : { sessionId: context.sessionId }),
    idempotencyKey,
    submittedAt: context.submittedAt,
  };
}
