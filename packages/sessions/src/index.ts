export { type AuthState, normalizeAuth, type RefusedLogin } from './auth-state.js';
export { boundCookieHeader, boundCookies, JAR_LIMITS } from './jar-limits.js';
export {
  JobSession,
  type JobSessionOptions,
  type OriginStorage,
  type SessionContext,
  type SessionProfile,
} from './job-session.js';
export { MetaBacklog, type MetaDelta, mergeMeta, type SessionMeta } from './meta-backlog.js';
export { type RenewOptions, type RenewOutcome, renewAuthOnce } from './reauth.js';
export { newSessionCounters, type SessionCounters } from './session-counters.js';
export { loadSessionHasher, SessionHasher } from './session-hasher.js';
export {
  type CookieChange,
  type CookieWrites,
  cookieField,
  type JarHydration,
  matchesCookiePattern,
  SessionCookieJar,
  TRACKING_COOKIES,
} from './session-jar.js';
export { SessionManager } from './session-manager.js';
