import type { StoredResult } from '@crawlfleet/results';

/** A small text result for `idempotencyKey`, as a worker stores it, with `overrides` on top. */
export function storedResult(idempotencyKey: string, overrides: Partial<StoredResult> = {}): StoredResult {
  return {
    url: `http://127.0.0.1/${idempotencyKey}`,
    finalUrl: `http://127.0.0.1/${idempotencyKey}`,
    status: 200,
    headers: { 'content-type': 'text/plain' },
    body: `body of ${idempotencyKey}`,
    bodyEncoding: 'utf8',
    bodyBytes: 10,
    bodyTruncated: false,
    idempotencyKey,
    jobId: idempotencyKey,
    tenant: 'default',
    sessionId: null,
    attempts: 1,
    redirects: 0,
    durationMs: 5,
    fetchedAt: new Date().toISOString(),
    ...overrides,
  };
}
