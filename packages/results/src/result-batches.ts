/** A result waiting for its turn's write: its ledger key and its JSON. */
export interface PendingResult {
  ledgerKey: string;
  json: string;
  /** A crawl's page: its crawl's hash and seen set, and its links (JSON, `{max, links}`). */
  crawlKey?: string;
  seenKey?: string;
  links?: string;
}

/** Results per script call at most, and bytes of JSON: a call holds Redis while it runs. */
const MAX_RESULTS = 64;
const MAX_BYTES = 4 * 1024 * 1024;

/**
 * How a turn's results are cut into script calls (`TurnBatch`'s split): at most `MAX_RESULTS`
 * and `MAX_BYTES` of JSON each, and at least one result per call, however large.
 */
export function resultCalls(results: readonly PendingResult[]): number[] {
  const sizes: number[] = [];
  let count = 0;
  let bytes = 0;
  for (const { json, links } of results) {
    const size = json.length + (links?.length ?? 0);
    if (count > 0 && (count === MAX_RESULTS || bytes + size > MAX_BYTES)) {
      sizes.push(count);
      count = 0;
      bytes = 0;
    }
    count++;
    bytes += size;
  }
  if (count > 0) sizes.push(count);
  return sizes;
}
