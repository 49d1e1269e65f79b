import { type FileHandle, open, readdir, rename, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { crc32, inflateRawSync } from 'node:zlib';
import { WARCParser } from 'warcio';
import { isLocalProcessAlive } from './local-process.js';

/** A file being written carries this suffix until it is finished; a reader takes only files without. */
export const PART = '.part';

/** `<sink>-<yyyymmddThhmmssZ>-<host>-<pid>-<seq>.warc.gz.part`; the host may itself hold dashes. */
const PART_NAME = /^.+-\d{8}T\d{6}Z-(.+)-(\d+)-\d+\.warc\.gz\.part$/;

/** The first read of a leftover file per record; doubled while a record does not fit. */
const REPAIR_WINDOW = 1024 * 1024;

/**
 * Finishes the `.part` files in `dir` that writers on this host left when they died. A file of a
 * live process (or of a pid reused since) is left for later; one from another host is left to that
 * host, which alone can tell whether its writer lives.
 */
export async function finishLeftovers(dir: string): Promise<void> {
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

/** Makes a directory's entries (a new or renamed file) durable. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
