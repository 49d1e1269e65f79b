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
export { type KeyRingCheck, type RotateTally, SessionAdmin, type SessionListing } from './session-admin.js';
export { SessionFlags } from './session-flags.js';
export { ruleOf, SLATE_RULES, type SlateName, type SlateRule, type SlateShape, type WriteRule } from './slate-rules.js';
export {
  type CommitResult,
  type DiscardReason,
  derivedFrom,
  type FieldsDerivation,
  fieldData,
  type HydrateAnswer,
  type KeptHydrate,
  payloadHash,
  type SlateRead,
  SlateStore,
  type SlateWrite,
} from './slate-store.js';
export { type ReadTicket, TrackedHydrates, type TrackedHydratesOptions } from './tracked-hydrates.js';
