import type { BodyReader } from '@crawlfleet/bodies';
import { encodeBody, type StoredResult } from '@crawlfleet/results';
import type { SinkEntry } from './sink-target.js';

/**
 * A result as sinks write it: a body the worker put in the body store is read back (the outbox
 * carried only its reference), and the body's bytes are at hand for targets that store bytes.
 */
export async function resolveEntry(entryId: string, result: StoredResult, bodies: BodyReader): Promise<SinkEntry> {
  if (result.bodyRef === undefined) {
    return { entryId, result, body: Buffer.from(result.body, result.bodyEncoding === 'base64' ? 'base64' : 'utf8') };
  }
  const body = await bodies.get(result.bodyRef);
  // The stored bytes are already capped; encoding them again gives what the inline path stores.
  const encoded = encodeBody(body, result.headers['content-type'], body.length);
  return { entryId, result: { ...result, body: encoded.body, bodyEncoding: encoded.bodyEncoding }, body };
}
