export {
  type AuthState,
  JobSession,
  newSessionCounters,
  type SessionContext,
  type SessionCounters,
  SessionManager,
  type SessionProfile,
} from './job-session.js';
export { buildLoginRequest, type LoginRequest } from './login.js';
export { MetaBacklog, type MetaDelta, mergeMeta, type SessionMeta } from './meta-backlog.js';
export { type ReauthOptions, type ReauthOutcome, reauthenticate } from './reauth.js';
export { loadSessionHasher, SessionHasher } from './session-hasher.js';
export {
  type CookieChange,
  type JarHydration,
  matchesCookiePattern,
  SessionCookieJar,
  TRACKING_COOKIES,
} from './session-jar.js';
