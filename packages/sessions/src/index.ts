export { boundCookieHeader, boundCookies, JAR_LIMITS } from './jar-limits.js';
export {
  type AuthState,
  JobSession,
  newSessionCounters,
  normalizeAuth,
  type RefusedLogin,
  type SessionContext,
  type SessionCounters,
  SessionManager,
  type SessionProfile,
} from './job-session.js';
export { MetaBacklog, type MetaDelta, mergeMeta, type SessionMeta } from './meta-backlog.js';
export { type RenewOptions, type RenewOutcome, renewAuthOnce } from './reauth.js';
export { loadSessionHasher, SessionHasher } from './session-hasher.js';
export {
  type CookieChange,
  type JarHydration,
  matchesCookiePattern,
  SessionCookieJar,
  TRACKING_COOKIES,
} from './session-jar.js';
