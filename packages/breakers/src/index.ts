export { BreakerFlags } from './breaker-flags.js';
export { type SessionBreakerOptions, SessionBreakers } from './session-breakers.js';
