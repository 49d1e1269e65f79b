export { type LoggedOutSign, loggedOutSign, loginFailure, loginPages } from './auth-checks.js';
export { isLoginFailure, LoginCoolingDownError, LoginRefusedError } from './errors.js';
export { parseJsonBody, valueAt } from './json-path.js';
export type { FindLoginFormOptions, LoginForm } from './login-form.js';
export { buildFormSubmission, buildLoginRequest, buildRefreshRequest, type LoginRequest } from './login-request.js';
export { SecretResolver } from './secrets.js';
export {
  type BrowserLogin,
  type PageFetcher,
  SessionAuthenticator,
  type SessionAuthenticatorOptions,
} from './session-authenticator.js';
