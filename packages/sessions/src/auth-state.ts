/** A login the site refused: no job of the session tries to log in again before `until`. */
export interface RefusedLogin {
  at: string;
  until: string;
  /** Refusals in a row: each doubles the cool-down (the session's login breaker). */
  count: number;
  status?: number | undefined;
  /** Why, in a line (no secret), and the start of the answer, redacted. */
  message: string;
  snippet?: string | undefined;
}

/**
 * A session's login, sealed in its `auth` slate like every slate: never a password; the tokens
 * the site issued when it uses them. Of two writers, the later `changedAt` wins.
 */
export interface AuthState {
  changedAt: string;
  /** The last login or refresh that succeeded; with `expiresAt`, a login that holds until then. */
  loggedInAt?: string | undefined;
  expiresAt?: string | undefined;
  /** The access token requests carry (`auth.login.token`). */
  token?: string | undefined;
  refreshToken?: string | undefined;
  refused?: RefusedLogin | undefined;
  /** How long Redis keeps the slate (a refresh token may outlive the access token). */
  keepUntil: string;
}

/** An auth slate as stored; slates of older workers held only `loggedInAt` and `expiresAt`. */
export function normalizeAuth(value: unknown): AuthState | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const state = value as Partial<AuthState>;
  if (typeof state.changedAt === 'string' && typeof state.keepUntil === 'string') return state as AuthState;
  if (typeof state.loggedInAt === 'string' && typeof state.expiresAt === 'string')
    return { ...state, changedAt: state.loggedInAt, keepUntil: state.expiresAt } as AuthState;
  return undefined;
}
