import { CrawlFailure } from '@crawlfleet/failures';
import type { RefusedLogin } from '@crawlfleet/sessions';

/**
 * A login the site refused, now or within the session's cool-down: the job goes to the DLQ as
 * `auth_failed`, with the login answer's status and a redacted snippet.
 */
export class LoginRefusedError extends CrawlFailure {
  override readonly name = 'LoginRefusedError';

  constructor(refused: RefusedLogin) {
    super(
      { failureClass: 'non_recoverable', reason: 'auth_failed', status: refused.status },
      `login refused: ${refused.message}`,
      refused.status === undefined
        ? undefined
        : { status: refused.status, headers: {}, bodySnippet: refused.snippet ?? '' },
    );
  }
}

/**
 * A refused login's cool-down holds this job until it ends (`auth.refused.jobs: "wait"`): the
 * job is moved to delayed without spending an attempt.
 */
export class LoginCoolingDownError extends CrawlFailure {
  override readonly name = 'LoginCoolingDownError';

  constructor(
    readonly waitMs: number,
    refused: RefusedLogin,
  ) {
    super(
      { failureClass: 'recoverable', reason: 'auth_cooldown', status: refused.status, retryAfterMs: waitMs },
      `the session's login was refused (${refused.message}); waiting ${Math.ceil(waitMs / 1000)} s before trying again`,
    );
  }
}

/** Reasons of a failed login, refresh or wait for one: none says the session itself is unhealthy. */
const LOGIN_FAILURES: ReadonlySet<string> = new Set([
  'auth_failed',
  'auth_cooldown',
  'login_secret_missing',
  'login_unavailable',
  'reauth_wait_timeout',
]);

/** Whether a failure's reason is about logging in (it does not count towards a session's breaker). */
export function isLoginFailure(reason: string): boolean {
  return LOGIN_FAILURES.has(reason);
}
