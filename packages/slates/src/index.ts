export { EnvelopeError, envelopeKid, type OpenFailure, open, seal } from './envelope.js';
export { generateKeyEntry, KeyRing, parseKeyRing, type RingKey } from './key-ring.js';
export {
  keyRingFromEnv,
  type LocalKeyRing,
  localKeyFilePath,
  localKeyRing,
  requireKeyRing,
  saveLocalKey,
} from './key-source.js';
export {
  type CommitResult,
  type DiscardReason,
  type HydrateAnswer,
  type KeptHydrate,
  listSessions,
  payloadHash,
  purgeSession,
  type SessionListing,
  type SlateName,
  type SlateRead,
  SlateStore,
  type SlateWrite,
} from './slate-store.js';
export { type ReadTicket, TrackedHydrates, type TrackedHydratesOptions } from './tracked-hydrates.js';
