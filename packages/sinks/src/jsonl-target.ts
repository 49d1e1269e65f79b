import type { FileHandle } from 'node:fs/promises';
import { mkdir, open, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { gunzipSync, gzipSync, constants as zlibConstants } from 'node:zlib';
import { InputError } from '@crawlfleet/core';
import { isLocalProcessAlive } from './local-process.js';
import { lineOf, type SinkItem, type SinkTarget } from './sink-target.js';

export interface JsonlTargetOptions {
  /** Names the files: `<sinkName>-<time>-<host>-<pid>-<n>.jsonl[.gz]`. */
  sinkName: string;
  /** Gzip the files (each batch is one gzip member; `zcat` reads them whole). */
  gzip?: boolean | undefined;
  /** A file is closed and a new one started past this size. Default 256 MiB. */
  maxFileBytes?: number | undefined;
}

const PART = '.part';

/**
 * JSON Lines files in a directory, one result per line (`results export`'s format; every line
 * carries its idempotency key, so a batch written again after a crash is told apart). A file is
 * `<name>.part` while open: each batch is appended and fsynced before it counts, and the file is
 * renamed when it is full or the sink stops. A `.part` file left by a process of this host that
 * died is finished at the next start: cut after its last whole line, and renamed.
 */
export class JsonlTarget implements SinkTarget {
  readonly description: string;
  private file: FileHandle | undefined;
  private path = '';
  private bytes = 0;
  private sequence = 0;
  private readonly gzip: boolean;
  private readonly maxFileBytes: number;

  private constructor(
    private readonly dir: string,
    private readonly options: JsonlTargetOptions,
  ) {
    this.description = `jsonl:${dir}`;
    this.gzip = options.gzip ?? false;
    this.maxFileBytes = options.maxFileBytes ?? 256 * 1024 * 1024;
  }

  static async open(dir: string, options: JsonlTargetOptions): Promise<JsonlTarget> {
    const root = resolve(dir);
    try {
      await mkdir(root, { recursive: true });
    } catch (error) {
      throw new InputError('invalid_sink', `jsonl:${dir}: cannot create the directory (${(error as Error).message})`);
    }
    await finishAbandoned(root);
    return new JsonlTarget(root, options);
  }

  async write(entries: readonly SinkItem[]): Promise<void> {
    let text = '';
    for (const entry of entries) text += lineOf(entry);
    const bytes = this.gzip ? gzipSync(text) : Buffer.from(text);
    const file = await this.current();
    await file.write(bytes);
    await file.sync();
    this.bytes += bytes.length;
    if (this.bytes >= this.maxFileBytes) await this.finish();
  }

  async close(): Promise<void> {
    await this.finish();
  }

  private async current(): Promise<FileHandle> {
    if (this.file !== undefined) return this.file;
    const time = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, 'Z');
    const name = `${this.options.sinkName}-${time}-${hostname()}-${process.pid}-${++this.sequence}`;
    this.path = join(this.dir, `${name}.jsonl${this.gzip ? '.gz' : ''}`);
    try {
      this.file = await open(`${this.path}${PART}`, 'a');
    } catch (error) {
      throw new InputError('invalid_sink', `${this.description}: cannot write (${(error as Error).message})`);
    }
    this.bytes = 0;
    return this.file;
  }

  private async finish(): Promise<void> {
    if (this.file === undefined) return;
    await this.file.close();
    this.file = undefined;
    await rename(`${this.path}${PART}`, this.path);
  }
}

/** `.part` files of processes of this host that are gone: cut to their last whole line, renamed. */
async function finishAbandoned(dir: string): Promise<void> {
  const host = hostname();
  for (const name of await readdir(dir)) {
    const match = /^.+-(.+)-(\d+)-\d+\.jsonl(\.gz)?\.part$/.exec(name);
    if (match === null || match[1] !== host || isLocalProcessAlive(Number(match[2]))) continue;
    const path = join(dir, name);
    const raw = await readFile(path);
    const gzipped = match[3] !== undefined;
    // A torn last gzip member yields what it holds; the torn last line is cut either way.
    const text = gzipped ? gunzipSync(raw, { finishFlush: zlibConstants.Z_SYNC_FLUSH }) : raw;
    const whole = text.subarray(0, text.lastIndexOf(0x0a) + 1);
    if (whole.length !== text.length || gzipped) await writeFile(path, gzipped ? gzipSync(whole) : whole);
    await rename(path, path.slice(0, -PART.length));
  }
}
