import { type FileHandle, open } from 'node:fs/promises';
import { InputError } from '@crawlfleet/core';
import { lineOf, type SinkItem, type SinkTarget } from './sink-target.js';

/**
 * One JSON Lines file, appended batch by batch, each fsynced before `write` resolves: what a
 * crawl's own `--out` writes while it runs (a sink of its own crawl).
 */
export class JsonlFile implements SinkTarget {
  readonly description: string;

  private constructor(
    private readonly file: FileHandle,
    readonly path: string,
  ) {
    this.description = `jsonl file ${path}`;
  }

  /** Creates `path` (it must not exist), readable by its owner only. */
  static async create(path: string): Promise<JsonlFile> {
    try {
      return new JsonlFile(await open(path, 'wx', 0o600), path);
    } catch (error) {
      throw new InputError('invalid_out', `${path}: ${(error as Error).message}`);
    }
  }

  async write(entries: readonly SinkItem[]): Promise<void> {
    let text = '';
    for (const entry of entries) text += lineOf(entry);
    await this.file.write(text);
    await this.file.sync();
  }

  /** Appends lines as they are (from an earlier file of the same crawl). */
  async append(lines: string): Promise<void> {
    await this.file.write(lines);
  }

  async close(): Promise<void> {
    await this.file.sync();
    await this.file.close();
  }
}
