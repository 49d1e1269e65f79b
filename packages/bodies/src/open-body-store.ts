import { InputError } from '@crawlfleet/core';
import type { BodyStore } from './body-store.js';
import { FileBodyStore } from './file-body-store.js';

/**
 * The body store a URI names: `file:DIR` (also `file:///abs/dir`) or `s3://bucket/prefix`. The
 * S3 client loads only when an `s3://` store is opened.
 */
export async function openBodyStore(uri: string): Promise<BodyStore> {
  if (uri.startsWith('file:')) {
    const dir = uri.startsWith('file://') ? new URL(uri).pathname : uri.slice('file:'.length);
    if (dir === '') throw new InputError('invalid_body_store', `body store ${uri}: file: needs a directory`);
    return new FileBodyStore(decodeURIComponent(dir));
  }
  if (uri.startsWith('s3://')) {
    const { S3BodyStore } = await import('./s3-body-store.js');
    return S3BodyStore.open(uri);
  }
  throw new InputError(
    'invalid_body_store',
    `body store must be file:DIR or s3://bucket/prefix, got ${JSON.stringify(uri)}`,
  );
}

/**
 * Reads bodies by reference, opening the store each reference names once: a sink reads what
 * workers anywhere put, without being told where.
 */
export class BodyReader {
  private readonly stores = new Map<string, Promise<BodyStore>>();

  async get(ref: string): Promise<Buffer> {
    const root = ref.startsWith('s3://') ? `s3://${new URL(ref).host}` : 'file:/';
    let store = this.stores.get(root);
    if (store === undefined) {
      store = openBodyStore(root);
      this.stores.set(root, store);
    }
    return (await store).get(ref);
  }

  async close(): Promise<void> {
    for (const store of this.stores.values()) await (await store).close();
    this.stores.clear();
  }
}

/**
 * The body store a URI names, opened on its first use: for code that is set up synchronously (a
 * worker) and may never store a large body. A bad URI fails that first use.
 */
export function lazyBodyStore(uri: string): BodyStore {
  let opened: Promise<BodyStore> | undefined;
  const store = () => {
    opened ??= openBodyStore(uri);
    return opened;
  };
  return {
    location: uri,
    put: async (bytes) => (await store()).put(bytes),
    get: async (ref) => (await store()).get(ref),
    close: async () => {
      if (opened !== undefined) await (await opened).close();
    },
  };
}
