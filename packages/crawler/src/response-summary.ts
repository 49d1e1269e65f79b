import { redactPii, redactPiiDeep, type TenantConfig } from '@crawlfleet/core';
import type { ResponseSummary } from '@crawlfleet/failures';
import type { FetchedPage } from '@crawlfleet/fetcher';
import { pickStoredHeaders } from '@crawlfleet/results';

/** How much of a failed answer's body a DLQ entry keeps. */
export const SNIPPET_BYTES = 2048;

/** What a person needs to see of a failed answer in its DLQ entry (redacted as results are). */
export function responseSummary(page: FetchedPage, tenant: TenantConfig): ResponseSummary {
  const snippet = page.body.subarray(0, SNIPPET_BYTES).toString('utf8');
  const headers = pickStoredHeaders(page.headers);
  return {
    status: page.status,
    // Redacted as stored results are: a header may name a person (content-language, link).
    headers: tenant.redactPii ? redactPiiDeep(headers) : headers,
    bodySnippet: tenant.redactPii ? redactPii(snippet) : snippet,
  };
}
