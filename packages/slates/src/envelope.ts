import { createCipheriv, createDecipheriv, randomFillSync } from 'node:crypto';
import type { KeyRing } from './key-ring.js';

const VERSION = 'cf1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Random bytes drawn in bulk: one system call for many IVs instead of one per seal. */
const POOL = Buffer.alloc(IV_BYTES * 1024);
let pooled = POOL.length;

/** A fresh random 96-bit IV (a copy: the pool is refilled in place). */
function randomIv(): Buffer {
  if (pooled + IV_BYTES > POOL.length) {
    randomFillSync(POOL);
    pooled = 0;
  }
  const iv = Buffer.from(POOL.subarray(pooled, pooled + IV_BYTES));
  pooled += IV_BYTES;
  return iv;
}

/** Why an envelope could not be opened: each is a reason to discard the slate, never to use it. */
export type OpenFailure = 'malformed' | 'unknown_key' | 'auth_failed';

export class EnvelopeError extends Error {
  override readonly name = 'EnvelopeError';

  constructor(readonly reason: OpenFailure) {
    super(`slate envelope ${reason.replace('_', ' ')}`);
  }
}

/**
 * Seals a slate value: AES-256-GCM with a random 96-bit IV under the ring's current key, with
 * the slate's full Redis key as associated data, so a value copied under another key (another
 * session's, or another slate's) fails to open. Format: `cf1.<kid>.<iv>.<ciphertext>.<tag>`,
 * base64url parts.
 */
export function seal(ring: KeyRing, associatedData: string, plaintext: string): string {
  const { kid, key } = ring.current;
  const iv = randomIv();
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(associatedData, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return [
    VERSION,
    kid,
    iv.toString('base64url'),
    body.toString('base64url'),
    cipher.getAuthTag().toString('base64url'),
  ].join('.');
}

/** The key id an envelope names, or undefined when it is not one. */
export function envelopeKid(envelope: string): string | undefined {
  const parts = envelope.split('.');
  return parts.length === 5 && parts[0] === VERSION ? parts[1] : undefined;
}

/** Decodes base64url only in its one canonical form: any other spelling is not our envelope. */
function decodePart(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64url');
  return bytes.toString('base64url') === text ? bytes : undefined;
}

/** Opens an envelope sealed for `associatedData`; throws `EnvelopeError` for anything off. */
export function open(ring: KeyRing, associatedData: string, envelope: string): string {
  const parts = envelope.split('.');
  if (parts.length !== 5 || parts[0] !== VERSION) throw new EnvelopeError('malformed');
  const [, kid = '', ivText = '', bodyText = '', tagText = ''] = parts;
  const ringKey = ring.get(kid);
  if (ringKey === undefined) throw new EnvelopeError('unknown_key');
  const iv = decodePart(ivText);
  const tag = decodePart(tagText);
  const body = decodePart(bodyText);
  if (iv?.length !== IV_BYTES || tag?.length !== TAG_BYTES || body === undefined) throw new EnvelopeError('malformed');
  try {
    const decipher = createDecipheriv('aes-256-gcm', ringKey.key, iv);
    decipher.setAAD(Buffer.from(associatedData, 'utf8'));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
  } catch {
    throw new EnvelopeError('auth_failed');
  }
}
