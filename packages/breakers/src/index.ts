export { type SessionBreakerOptions, SessionBreakers } from './session-breakers.js';
