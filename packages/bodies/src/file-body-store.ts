import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type BodyStore, bodyPath, type StoredBody } from './body-store.js';

/**
 * Bodies as files under one directory (one machine, or a volume every worker and sink mounts at
 * the same path): `DIR/sha256/ab/<hex>`, written to a temporary name, fsynced and renamed, so a
 * reader never sees half a body and a second put of the same bytes finds it there.
 */
export class FileBodyStore implements BodyStore {
  readonly location: string;
  private readonly root: string;

  constructor(dir: string) {
    this.root = resolve(dir);
    this.location = `file:${this.root}`;
  }

  async put(bytes: Buffer): Promise<StoredBody> {
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const path = join(this.root, bodyPath(sha256));
    const stored = { ref: pathToFileURL(path).href, sha256 };
    if (await exists(path)) return stored;
    await mkdir(dirname(path), { recursive: true });
    const temporary = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    const file = await open(temporary, 'w');
    try {
      await file.writeFile(bytes);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temporary, path);
    return stored;
  }

  get(ref: string): Promise<Buffer> {
    return readFile(fileURLToPath(ref));
  }

  async close(): Promise<void> {}
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
