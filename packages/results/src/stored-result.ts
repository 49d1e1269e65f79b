import { TextDecoder } from 'node:util';

/** One result as the results stream keeps it and `results export` prints it. */
export interface StoredResult {
  url: string;
  finalUrl: string;
  status: number;
  /** Only allowlisted headers (see `STORED_HEADERS`). */
  headers: Record<string, string>;
  /**
   * Text for textual content types, base64 otherwise (see `bodyEncoding`). Empty in the outbox
   * when the body went to the body store (`bodyRef`); sinks and export put it back.
   */
  body: string;
  /** Where the body is when it was too large to keep in Redis (`results.inlineBodyBytes`). */
  bodyRef?: string;
  /** Hex SHA-256 of the body's bytes, with `bodyRef`. */
  bodySha256?: string;
  bodyEncoding: 'utf8' | 'base64';
  /** The full size of the body as received, even when `body` was capped. */
  bodyBytes: number;
  bodyTruncated: boolean;
  idempotencyKey: string;
  jobId: string;
  tenant: string;
  sessionId: string | null;
  /** The attempt that succeeded, counting from 1. */
  attempts: number;
  redirects: number;
  durationMs: number;
  fetchedAt: string;
  /** The proxy it came through (`scheme://host:port`, never credentials), when its tenant has proxies. */
  proxy?: string;
  /** The named crawl it is a page of, and how deep (seeds are 0). */
  crawl?: string;
  depth?: number;
  /** Set when a browser rendered the page (`--render`): `body` is the rendered document. */
  rendered?: true;
  /** Where the rendered page's screenshot (PNG) is in the body store (`render.screenshot`). */
  screenshotRef?: string;
}

/**
 * Response headers worth keeping with a result. Everything else (notably Set-Cookie, which can
 * carry session secrets) is dropped before the result is stored.
 */
export const STORED_HEADERS: readonly string[] = [
  'content-type',
  'content-language',
  'content-length',
  'content-encoding',
  'last-modified',
  'etag',
  'cache-control',
  'expires',
  'date',
  'age',
  'vary',
  'location',
  'link',
  'x-robots-tag',
  'retry-after',
];

export function pickStoredHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const name of STORED_HEADERS) {
    const value = headers[name];
    if (value !== undefined) kept[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return kept;
}

const TEXTUAL =
  /^(text\/|application\/(?:[\w.+-]*\+)?(?:json|xml|javascript|ecmascript|x-www-form-urlencoded))|^image\/svg\+xml/i;

/** Decoders by charset: a decode without `stream` keeps no state, so one serves every body. */
const decoders = new Map<string, TextDecoder>();

/** The body as text in the content type's charset (UTF-8 when none is declared or known). */
function decodeText(body: Buffer, contentType: string): string {
  const charset = /charset\s*=\s*"?([\w.:-]+)/i.exec(contentType)?.[1]?.toLowerCase() ?? 'utf-8';
  if (charset === 'utf-8' || charset === 'utf8') return decodeUtf8(body);
  let decoder = decoders.get(charset);
  if (decoder === undefined) {
    try {
      decoder = new TextDecoder(charset);
    } catch {
      return decodeUtf8(body);
    }
    if (decoders.size < 64) decoders.set(charset, decoder);
  }
  return decoder.decode(body);
}

/** As TextDecoder('utf-8') decodes (invalid bytes become U+FFFD, a leading BOM goes), faster. */
function decodeUtf8(body: Buffer): string {
  const bom = body.length >= 3 && body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf;
  return body.toString('utf8', bom ? 3 : 0);
}

/**
 * The stored form of a body: capped at `maxBytes`, decoded as text when the content type is
 * textual (in its declared charset), base64 otherwise so binary survives JSON.
 */
export function encodeBody(
  body: Buffer,
  contentType: string | undefined,
  maxBytes: number,
): Pick<StoredResult, 'body' | 'bodyEncoding' | 'bodyTruncated'> {
  const truncated = body.length > maxBytes;
  const kept = truncated ? body.subarray(0, maxBytes) : body;
  const type = contentType ?? '';
  if (TEXTUAL.test(type)) {
    return { body: decodeText(kept, type), bodyEncoding: 'utf8', bodyTruncated: truncated };
  }
  return { body: kept.toString('base64'), bodyEncoding: 'base64', bodyTruncated: truncated };
}
