import type { BodyStore } from '@crawlfleet/bodies';
import type { StoredResult } from '@crawlfleet/results';

type EncodedBody = Pick<StoredResult, 'body' | 'bodyEncoding'>;
export type PlacedBody = Pick<StoredResult, 'body' | 'bodyRef' | 'bodySha256'>;

/**
 * Where a result's body goes: inline in the outbox when it is small or there is no body store,
 * else into the store (written durably before the result that names it, content-addressed, so a
 * retried job rewrites the same object) with only its reference in the outbox. What the store
 * holds is exactly what `body` would hold, as bytes: UTF-8 text (after PII redaction) or the
 * binary bytes, so a sink that reads it back gets what an inline body gives.
 */
export async function placeBody(encoded: EncodedBody, store: BodyStore, inlineBodyBytes: number): Promise<PlacedBody> {
  const bytes =
    encoded.bodyEncoding === 'base64' ? Buffer.from(encoded.body, 'base64') : Buffer.from(encoded.body, 'utf8');
  if (bytes.length <= inlineBodyBytes) return { body: encoded.body };
  const { ref, sha256 } = await store.put(bytes);
  return { body: '', bodyRef: ref, bodySha256: sha256 };
}
