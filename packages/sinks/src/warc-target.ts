import { access, constants, type FileHandle, mkdir, open, rename, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { InputError, oneLine } from '@crawlfleet/core';
import { checkSinkName } from '@crawlfleet/results';
import { WARC_1_1, WARCRecord, WARCSerializer } from 'warcio';
import type { SinkItem, SinkTarget } from './sink-target.js';
import { recordId, resultRecords } from './warc-records.js';
import { finishLeftovers, PART, syncDirectory } from './warc-repair.js';

/** Options of `WarcTarget.open`. */
export interface WarcTargetOptions {
  /** The sink's name: the start of every file name, and a field of each file's `warcinfo`. */
  sinkName: string;
  /** A file is finished, and the next result begins a new one, once it reaches this size. Default 1 GiB. */
  maxFileBytes?: number;
}

const DEFAULT_MAX_FILE_BYTES = 1024 ** 3;

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

  async write(entries: readonly SinkItem[]): Promise<void> {
    if (entries.length === 0) return;
    let namesChanged = false;
    try {
      for (const entry of entries) {
        // WARC holds what went over the wire: a handler's records have no place in it.
        if (entry.record !== undefined) continue;
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

/** `yyyymmddThhmmssZ` in UTC: sortable, and free of characters file systems mind. */
function fileStamp(date: Date): string {
  return date
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}
