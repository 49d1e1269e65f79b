import { createHash, randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import { gzipSync } from 'node:zlib';
import type { StoredResult } from '@crawlfleet/results';
import { WARC_1_1, WARCRecord, WARCSerializer } from 'warcio';
import type { SinkEntry } from './sink-target.js';

/** Response headers that describe the bytes on the wire, not the decoded body a result keeps. */
const WIRE_HEADERS = new Set(['content-encoding', 'transfer-encoding', 'content-length']);

/** The `response` and then the `request` record of one result, each a gzip member. */
export async function resultRecords(entry: SinkEntry, warcinfoId: string): Promise<Uint8Array[]> {
  const { result, body } = entry;
  const responseId = recordId();
  const response = WARCRecord.create(
    {
      type: 'response',
      url: result.finalUrl,
      date: result.fetchedAt,
      warcVersion: WARC_1_1,
      statusline: `HTTP/1.1 ${result.status} ${STATUS_CODES[result.status] ?? ''}`,
      httpHeaders: responseHeaders(result, body.length),
      warcHeaders: {
        'WARC-Record-ID': responseId,
        'WARC-Warcinfo-ID': warcinfoId,
        ...(result.bodyTruncated ? { 'WARC-Truncated': 'length' } : {}),
        'WARC-Crawlfleet-Idempotency-Key': result.idempotencyKey,
        'WARC-Crawlfleet-Tenant': result.tenant,
      },
    },
    [body],
  );
  const target = URL.canParse(result.url) ? new URL(result.url) : undefined;
  const request = WARCRecord.create({
    type: 'request',
    url: result.url,
    date: result.fetchedAt,
    warcVersion: WARC_1_1,
    // The request as it would have gone out; a URL that does not parse is kept whole.
    statusline: `GET ${target === undefined ? result.url : target.pathname + target.search} HTTP/1.1`,
    httpHeaders: target === undefined ? [] : [['Host', target.host]],
    warcHeaders: {
      'WARC-Record-ID': recordId(),
      'WARC-Warcinfo-ID': warcinfoId,
      'WARC-Concurrent-To': responseId,
    },
  });
  return [await serialize(response, body), await serialize(request, Buffer.alloc(0))];
}

/**
 * One record as a gzip member. The digests are taken here with Node's SHA-256, which warcio then
 * keeps: its own hasher costs several times more than the rest of the record. The block is what
 * warcio writes after the WARC headers: the HTTP head, a blank line, the payload. The record is in
 * memory already (bodies are capped), and compressing it in place costs less than a hop to the
 * thread pool would.
 */
async function serialize(record: WARCRecord, payload: Buffer): Promise<Buffer> {
  const head = Buffer.from(`${record.httpHeaders?.toString() ?? ''}\r\n`);
  const headers = record.warcHeaders.headers;
  headers.set('WARC-Payload-Digest', `sha256:${createHash('sha256').update(payload).digest('hex')}`);
  headers.set('WARC-Block-Digest', `sha256:${createHash('sha256').update(head).update(payload).digest('hex')}`);
  return gzipSync(await WARCSerializer.serialize(record));
}

/**
 * The stored headers as they fit the body in the record: the body is decoded, so the headers that
 * describe its encoding on the wire go and `content-length` is its length here. Text was decoded
 * in its declared charset and is kept as UTF-8 (inline, and in the body store alike: see
 * `placeBody`), so the charset says UTF-8.
 */
function responseHeaders(result: StoredResult, bodyLength: number): [string, string][] {
  const reencoded = result.bodyEncoding === 'utf8';
  const headers: [string, string][] = [];
  for (const [name, value] of Object.entries(result.headers)) {
    const lower = name.toLowerCase();
    if (WIRE_HEADERS.has(lower)) continue;
    headers.push([name, reencoded && lower === 'content-type' ? withUtf8Charset(value) : value]);
  }
  headers.push(['content-length', String(bodyLength)]);
  return headers;
}

function withUtf8Charset(contentType: string): string {
  return `${contentType.replace(/\s*;\s*charset\s*=\s*("[^"]*"|[^;]*)/gi, '')}; charset=utf-8`;
}

export function recordId(): string {
  return `<urn:uuid:${randomUUID()}>`;
}
