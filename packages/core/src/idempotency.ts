import { createHash } from 'node:crypto';
import { InputError } from './errors.js';

export interface IdempotencyInput {
  tenant: string;
  method: string;
  /** Already canonical (see `canonicalizeUrl`). */
  canonicalUrl: string;
  body?: string | undefined;
  /**
   * The named crawl the fetch belongs to: a crawl fetches each of its URLs once, whatever another
   * crawl (or a plain submit) of the same URL did. None for a plain submit (its key is unchanged).
   */
  crawl?: string | undefined;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/**
 * The key that makes a fetch happen once: tenant, method, canonical URL and a hash of the body
 * (and the crawl, for a named crawl's pages).
 * It is the BullMQ job id, so it must never be all digits (BullMQ rejects integer ids) nor hold
 * a colon (it would split Redis key names): hex behind a fixed `ik-` prefix is neither.
 */
export function deriveIdempotencyKey(input: IdempotencyInput): string {
  const bodyHash = input.body === undefined || input.body === '' ? '-' : sha256(input.body);
  const parts = [input.tenant, input.method.toUpperCase(), input.canonicalUrl, bodyHash];
  if (input.crawl !== undefined) parts.push(`crawl:${input.crawl}`);
  const digest = sha256(parts.join('\n'));
  return `ik-${digest.slice(0, 40)}`;
}

const CALLER_KEY = /^[A-Za-z0-9._~-]{1,200}$/;

/** Checks a key the caller chose (`--key`): same alphabet rules as a derived one. */
export function checkCallerKey(key: string): string {
  if (!CALLER_KEY.test(key) || /^\d+$/.test(key)) {
    throw new InputError(
      'invalid_key',
      `--key must be 1-200 characters of A-Z a-z 0-9 . _ ~ - and not only digits, got ${JSON.stringify(key)}`,
    );
  }
  return key;
}
