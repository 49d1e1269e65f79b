import { createHash, randomUUID } from 'node:crypto';
import { access, constants, type FileHandle, mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import { STATUS_CODES } from 'node:http';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { crc32, gzipSync, inflateRawSync } from 'node:zlib';
import { InputError, oneLine } from '@crawlfleet/core';
import { checkSinkName, type StoredResult } from '@crawlfleet/results';
import { WARC_1_1, WARCParser, WARCRecord, WARCSerializer } from 'warcio';
import { isLocalProcessAlive } from './local-process.js';
import type { SinkEntry, SinkTarget } from './sink-target.js';

/** Options of `WarcTarget.open`. */
export interface WarcTargetOptions {
  /** The sink's name: the start of every file name, and a field of each file's `warcinfo`. */
  sinkName: string;
  /** A file is finished, and the next result begins a new one, once it reaches this size. Default 1 GiB. */
  maxFileBytes?: number;
}

const DEFAULT_MAX_FILE_BYTES = 1024 ** 3;

/** A file being written carries this suffix until it is finished; a reader takes only files without. */
const PART = '.part';

/** `<sink>-<yyyymmddThhmmssZ>-<host>-<pid>-<seq>.warc.gz.part`; the host may itself hold dashes. */
const PART_NAME = /^.+-\d{8}T\d{6}Z-(.+)-(\d+)-\d+\.warc\.gz\.part$/;

/** Response headers that describe the bytes on the wire, not the decoded body a result keeps. */
const WIRE_HEADERS = new Set(['content-encoding', 'transfer-encoding', 'content-length']);

/** The first read of a leftover file per record; doubled while a record does not fit. */
const REPAIR_WINDOW = 1024 * 1024;

/** Files begun by this process: with the pid, two targets here never pick the same name. */
let fileSequence = 0;

/** The file results are appended to, until it is finished. */
interface OpenFile {
  path: string;
  handle: FileHandle;
  warcinfoId: string;
  /** Bytes fsynced: a failed batch is cut back to this, so no torn record sits mid-file. */
  durableBytes: number;
  /** Bytes written or waiting in `pending`. */
  bytes: number;
  pending: Uint8Array[];
}

/**
 * Results as WARC 1.1 files, one gzip member per record (`.warc.gz`), as web archives and their
 * tools read them: each file opens with a `warcinfo` record, and each result is a `response`
 * record followed by the `request` that fetched it. A file is appended to under a `.part` name and
 * renamed when finished, so a crashed writer leaves a `.part` file that the next `open` on the same
 * host cuts back to its whole records and finishes.
 *
 * WARC has no place to update a record, so a batch delivered again after a crash is written again:
 * each response carries `WARC-Crawlfleet-Idempotency-Key` for a reader to drop the repeats by.
 * `write` calls must not overlap (a sink awaits each one).
 */
export class WarcTarget implements SinkTarget {
  readonly description: string;
  private readonly dir: string;
  private readonly sinkName: string;
  private readonly maxFileBytes: number;
  private file: OpenFile | undefined;

  private constructor(dir: string, sinkName: string, maxFileBytes: number) {
    this.description = `warc:${dir}`;
    this.dir = dir;
    this.sinkName = sinkName;
    this.maxFileBytes = maxFileBytes;
  }

  /**
   * Creates `dir` if missing, checks it can be written, and finishes what crashed writers on this
   * host left there.
   */
  static async open(dir: string, options: WarcTargetOptions): Promise<WarcTarget> {
    const sinkName = checkSinkName(options.sinkName);
    const maxFileBytes = options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
    if (!Number.isSafeInteger(maxFileBytes) || maxFileBytes < 1) {
      throw new InputError('invalid_sink', `warc sink ${sinkName}: maxFileBytes must be a positive integer`);
    }
    try {
      await mkdir(dir, { recursive: true });
      // Refused now rather than at the first batch: a read-only directory is a setup mistake.
      await access(dir, constants.W_OK);
      await finishLeftovers(dir);
    } catch (error) {
      throw new InputError('invalid_sink', `warc sink ${sinkName}: cannot use directory ${dir}: ${oneLine(error)}`);
    }
    return new WarcTarget(dir, sinkName, maxFileBytes);
  }

  async write(entries: readonly SinkEntry[]): Promise<void> {
    if (entries.length === 0) return;
    let namesChanged = false;
    try {
      for (const entry of entries) {
        if (this.file === undefined) {
          this.file = await this.begin();
          namesChanged = true;
        }
        const file = this.file;
        for (const record of await resultRecords(entry, file.warcinfoId)) {
          file.pending.push(record);
          file.bytes += record.length;
        }
        if (file.bytes >= this.maxFileBytes) {
          this.file = undefined;
          await finish(file);
          namesChanged = true;
        }
      }
      if (this.file !== undefined) await flush(this.file);
      // A new file's name, and a finished file's new name, must survive a crash like its bytes.
      if (namesChanged) await syncDirectory(this.dir);
    } catch (error) {
      await this.cutBack();
      throw error;
    }
  }

  async close(): Promise<void> {
    const file = this.file;
    if (file === undefined) return;
    this.file = undefined;
    await finish(file);
    await syncDirectory(this.dir);
  }

  /** A new `.part` file, opened for append, its `warcinfo` record waiting to be written. */
  private async begin(): Promise<OpenFile> {
    // The sequence is zero-padded so that names sort in the order the files were begun.
    const sequence = String(fileSequence++).padStart(5, '0');
    const name = `${this.sinkName}-${fileStamp(new Date())}-${hostname()}-${process.pid}-${sequence}.warc.gz`;
    const path = join(this.dir, name + PART);
    const warcinfoId = recordId();
    const warcinfo = WARCRecord.createWARCInfo(
      { filename: name, warcVersion: WARC_1_1, warcHeaders: { 'WARC-Record-ID': warcinfoId } },
      {
        software: 'crawlfleet',
        format: 'WARC File Format 1.1',
        conformsTo: 'https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/',
        'crawlfleet-sink': this.sinkName,
        hostname: hostname(),
      },
    );
    const first = gzipSync(await WARCSerializer.serialize(warcinfo));
    const handle = await open(path, 'ax');
    return { path, handle, warcinfoId, durableBytes: 0, bytes: first.length, pending: [first] };
  }

  /**
   * After a failed batch: the open file is cut back to its last fsynced size, so the batch's
   * redelivery appends after whole records; a file that had nothing durable yet (not even its
   * `warcinfo`) is removed, and the next batch begins a new one. If even that fails the file is
   * left as `.part`, for the first `open` after this process ends to repair.
   */
  private async cutBack(): Promise<void> {
    const file = this.file;
    if (file === undefined) return;
    file.pending = [];
    file.bytes = file.durableBytes;
    try {
      if (file.durableBytes > 0) {
        await file.handle.truncate(file.durableBytes);
        await file.handle.sync();
        return;
      }
      this.file = undefined;
      await file.handle.close();
      await unlink(file.path);
    } catch {
      this.file = undefined;
      await file.handle.close().catch(() => {});
    }
  }
}

/** Appends what is pending and fsyncs it. */
async function flush(file: OpenFile): Promise<void> {
  if (file.pending.length > 0) {
    // The handle appends (O_APPEND); like write, writev may write less than it was given.
    let pending = file.pending;
    while (pending.length > 0) {
      const { bytesWritten } = await file.handle.writev(pending);
      pending = unwritten(pending, bytesWritten);
    }
    file.pending = [];
  }
  await file.handle.sync();
  file.durableBytes = file.bytes;
}

/** The buffers, or the parts of them, past the first `written` bytes. */
function unwritten(buffers: Uint8Array[], written: number): Uint8Array[] {
  let skip = written;
  const left: Uint8Array[] = [];
  for (const buffer of buffers) {
    if (skip >= buffer.length) skip -= buffer.length;
    else {
      left.push(skip > 0 ? buffer.subarray(skip) : buffer);
      skip = 0;
    }
  }
  return left;
}

/** Writes and fsyncs the rest, closes the file and renames it to its final name. */
async function finish(file: OpenFile): Promise<void> {
  try {
    await flush(file);
  } finally {
    await file.handle.close();
  }
  await rename(file.path, file.path.slice(0, -PART.length));
}

/** The `response` and then the `request` record of one result, each a gzip member. */
async function resultRecords(entry: SinkEntry, warcinfoId: string): Promise<Uint8Array[]> {
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

function recordId(): string {
  return `<urn:uuid:${randomUUID()}>`;
}

/** `yyyymmddThhmmssZ` in UTC: sortable, and free of characters file systems mind. */
function fileStamp(date: Date): string {
  return date
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Finishes the `.part` files in `dir` that writers on this host left when they died. A file of a
 * live process (or of a pid reused since) is left for later; one from another host is left to that
 * host, which alone can tell whether its writer lives.
 */
async function finishLeftovers(dir: string): Promise<void> {
  const host = hostname();
  let finished = false;
  for (const name of await readdir(dir)) {
    const match = PART_NAME.exec(name);
    if (match === null || match[1] !== host || isLocalProcessAlive(Number(match[2]))) continue;
    await finishLeftover(join(dir, name));
    finished = true;
  }
  if (finished) await syncDirectory(dir);
}

/**
 * Cuts a crashed writer's file back to its whole records and gives it its final name; a file with
 * no result in it is removed. Another process finishing the same file at once is harmless: both
 * cut at the same place and the loser's rename finds nothing.
 */
async function finishLeftover(path: string): Promise<void> {
  try {
    const handle = await open(path, 'r+');
    let whole: WholeRecords;
    try {
      whole = await wholeRecords(handle);
      if (whole.results > 0) {
        await handle.truncate(whole.bytes);
        await handle.sync();
      }
    } finally {
      await handle.close();
    }
    if (whole.results > 0) await rename(path, path.slice(0, -PART.length));
    else await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

interface WholeRecords {
  /** The length of the leading run of whole records: where a torn one begins. */
  bytes: number;
  /** How many of them are not `warcinfo`. */
  results: number;
}

/**
 * Walks a file member by member: each record is one gzip member, and a crash can tear only the
 * last ones. zlib finds where a member ends and checks its CRC (the WARC parser reads past a torn
 * member without telling), then warcio checks the member holds one whole record. The file is read
 * a window at a time; a record larger than the window is read again with a window twice as large.
 */
async function wholeRecords(file: FileHandle): Promise<WholeRecords> {
  const { size } = await file.stat();
  let offset = 0;
  let results = 0;
  let window: Buffer = Buffer.alloc(0);
  let windowStart = 0;
  let span = REPAIR_WINDOW;
  while (offset < size) {
    const member = scanMember(window.subarray(offset - windowStart));
    if (member.kind === 'short' && windowStart + window.length < size) {
      span = windowStart === offset && window.length > 0 ? span * 2 : REPAIR_WINDOW;
      windowStart = offset;
      window = await readAt(file, offset, Math.min(span, size - offset));
      continue;
    }
    if (member.kind !== 'whole') break;
    const type = await wholeRecordType(member.content);
    if (type === undefined) break;
    if (type !== 'warcinfo') results++;
    offset += member.length;
  }
  return { bytes: offset, results };
}

async function readAt(file: FileHandle, position: number, length: number): Promise<Buffer> {
  const { buffer, bytesRead } = await file.read(Buffer.allocUnsafe(length), 0, length, position);
  return buffer.subarray(0, bytesRead);
}

/** What the bytes at a member's start hold: a whole member, its start only, or no gzip at all. */
type MemberScan = { kind: 'whole'; length: number; content: Buffer } | { kind: 'short' } | { kind: 'invalid' };

/** `inflateRawSync` with `info: true` answers the engine too, which @types/node does not say. */
interface InflateInfo {
  buffer: Buffer;
  engine: { bytesWritten: number };
}

function scanMember(bytes: Buffer): MemberScan {
  const header = gzipHeaderLength(bytes);
  if (typeof header !== 'number') return { kind: header };
  let inflated: InflateInfo;
  try {
    inflated = inflateRawSync(bytes.subarray(header), { info: true }) as unknown as InflateInfo;
  } catch (error) {
    return { kind: (error as { code?: string }).code === 'Z_BUF_ERROR' ? 'short' : 'invalid' };
  }
  // The deflate stream is followed by the CRC-32 and the size (mod 2^32) of what it holds.
  const length = header + inflated.engine.bytesWritten + 8;
  if (length > bytes.length) return { kind: 'short' };
  const content = inflated.buffer;
  const intact =
    bytes.readUInt32LE(length - 8) === crc32(content) && bytes.readUInt32LE(length - 4) === content.length % 2 ** 32;
  return intact ? { kind: 'whole', length, content } : { kind: 'invalid' };
}

/** The length of the gzip header at the start of `bytes` (RFC 1952, 2.3). */
function gzipHeaderLength(bytes: Buffer): number | 'short' | 'invalid' {
  if (bytes.length < 10) return bytes.length > 0 && bytes[0] !== 0x1f ? 'invalid' : 'short';
  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b || bytes[2] !== 8) return 'invalid';
  const flags = bytes[3] ?? 0;
  let at = 10;
  if (flags & 0x04) {
    if (bytes.length < 12) return 'short';
    at += 2 + bytes.readUInt16LE(10);
  }
  for (const flag of [0x08, 0x10]) {
    if (!(flags & flag)) continue;
    const end = bytes.indexOf(0, at);
    if (end < 0) return 'short';
    at = end + 1;
  }
  if (flags & 0x02) at += 2;
  return at > bytes.length ? 'short' : at;
}

/** The type of the one WARC record in `content`, if the record is whole. */
async function wholeRecordType(content: Buffer): Promise<string | undefined> {
  const record = await new WARCParser([content], { parseHttp: false }).parse();
  if (record === null) return undefined;
  const block = await record.readFully(false);
  return block.length === record.warcContentLength ? record.warcType : undefined;
}
