import type { BodyReader } from '@crawlfleet/bodies';
import type { StoredResult } from '@crawlfleet/results';
import type { SinkEntry } from './sink-target.js';

/**
 * A result as sinks write it: a body the worker put in the body store is read back (the outbox
 * carried only its reference), and the body's bytes are at hand for targets that store bytes.
 */
export async function resolveEntry(entryId: string, result: StoredResult, bodies: BodyReader): Promise<SinkEntry> {
  if (result.bodyRef === undefined) {
    return { entryId, result, body: Buffer.from(result.body, result.bodyEncoding === 'base64' ? 'base64' : 'utf8') };
  }
  // The store holds what `body` would: UTF-8 text, or the binary bytes (see placeBody).
  const body = await bodies.get(result.bodyRef);
  return {
    entryId,
    result: { ...result, body: body.toString(result.bodyEncoding === 'base64' ? 'base64' : 'utf8') },
    body,
  };
}
