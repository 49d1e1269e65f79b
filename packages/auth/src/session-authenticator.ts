import { type AuthConfig, type CrawlObserver, redactPii } from '@crawlfleet/core';
import { RecoverableError } from '@crawlfleet/failures';
import type { FetchedPage, FetchRequest, FetchTenant, PageFetcher } from '@crawlfleet/fetcher';
import type { Logger } from '@crawlfleet/log';
import { type AuthState, type JobSession, type RefusedLogin, renewAuthOnce } from '@crawlfleet/sessions';
import { Cookie } from 'tough-cookie';
import { type LoggedOutSign, loggedOutSign, loginFailure } from './auth-checks.js';
import { LoginCoolingDownError, LoginRefusedError } from './errors.js';
import { parseJsonBody, valueAt } from './json-path.js';
import { buildFormSubmission, buildLoginRequest, buildRefreshRequest, type LoginRequest } from './login-request.js';
import { SecretResolver } from './secrets.js';

export type { PageFetcher } from '@crawlfleet/fetcher';

/**
 * What logs a session in through a browser (`login.browser`): the login page rendered as the
 * session, the fields filled, the submit control clicked; the page it landed on comes back, with
 * the cookies it ended with already in the session's jar.
 */
export interface BrowserLogin {
  submitForm(
    request: FetchRequest,
    tenant: FetchTenant,
    form: {
      fields: Record<string, string>;
      submit?: string | undefined;
      waitFor?: string | undefined;
      formSelector?: string | undefined;
    },
  ): Promise<FetchedPage>;
}

export interface SessionAuthenticatorOptions {
  /** What logs a session in: the worker's fetcher (its address policy and pools apply). */
  fetcher: PageFetcher;
  /** What logs a session in through a browser; without it, a browser login fails as `browser_unavailable`. */
  browser?: BrowserLogin | undefined;
  /** How long one worker may hold a session's login lease: longer than the slowest login. */
  leaseMs: number;
  logger: Logger;
  observer?: CrawlObserver | undefined;
  /** Where `${NAME}` is read (default: the process environment). */
  env?: NodeJS.ProcessEnv | undefined;
  /** How `${file:...}` is read (default: the file system). */
  readFile?: ((path: string) => string) | undefined;
}

/** A login renewed ahead of time (`refresh_first` uses the refresh token when there is one). */
type RenewalMode = 'refresh_first' | 'login';

/** A login younger than this that did not help is not repeated: the page wants something else. */
const RELOGIN_AFTER_MS = 10_000;

/** Refusals in a row after which a `wait` tenant's jobs go to the DLQ instead of waiting again. */
const MAX_WAITED_REFUSALS = 3;

/** How much of a refused login's answer is kept for the DLQ entry. */
const SNIPPET_CHARS = 512;

/** Methods that change things: the ones a CSRF header is echoed on. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

/** A login that holds now (a refused login holds none). */
function holdsLogin(state: AuthState | undefined, now: number): state is AuthState & { expiresAt: string } {
  return state?.loggedInAt !== undefined && state.expiresAt !== undefined && Date.parse(state.expiresAt) > now;
}

function coolingDown(state: AuthState | undefined, now: number): state is AuthState & { refused: RefusedLogin } {
  return state?.refused !== undefined && Date.parse(state.refused.until) > now;
}

/** A host list entry: an exact name or `*.domain`. */
function hostMatches(host: string, entries: readonly string[]): boolean {
  return entries.some((raw) => {
    const entry = raw.toLowerCase();
    return entry.startsWith('*.') ? host.endsWith(entry.slice(1)) || host === entry.slice(2) : host === entry;
  });
}

/** Server errors and throttling say nothing about the credentials: the job is retried later. */
function unavailable(answer: FetchedPage, what: string): RecoverableError | undefined {
  if (answer.status < 500 && answer.status !== 429 && answer.status !== 408) return undefined;
  return new RecoverableError('login_unavailable', `${what} answered HTTP ${answer.status}`, { status: answer.status });
}

/**
 * Logs sessions in as real sites ask, once across the fleet: a form login read from the login
 * page (hidden CSRF fields kept, the tenant's fields filled in from secrets read at login time),
 * or a direct request; a bearer token taken from a JSON answer, sent on the session's requests
 * and refreshed before it expires; a login's lifetime taken from what the site says. A refused
 * login is written to the session's auth slate with a cool-down that doubles while refusals go
 * on (the session's login breaker), so the session's other jobs do not storm the site.
 */
export class SessionAuthenticator {
  private readonly env: NodeJS.ProcessEnv;

  constructor(private readonly options: SessionAuthenticatorOptions) {
    this.env = options.env ?? process.env;
  }

  /**
   * Headers the session's request carries: its access token (to the token's hosts only) and,
   * for a request that changes things, the CSRF cookie echoed in the tenant's header.
   */
  async requestHeaders(
    session: JobSession,
    auth: AuthConfig,
    url: string,
    method: string,
  ): Promise<Record<string, string> | undefined> {
    const token = this.tokenHeader(session, auth, url);
    const csrf = await this.csrfHeader(session, auth, url, method);
    return token === undefined ? csrf : { ...token, ...csrf };
  }

  private tokenHeader(session: JobSession, auth: AuthConfig, url: string): Record<string, string> | undefined {
    const token = auth.login.token;
    const value = session.auth?.token;
    if (token === undefined || value === undefined) return undefined;
    const login = new URL(auth.login.url as string);
    const target = new URL(url);
    // A token got over https never travels over http.
    if (login.protocol === 'https:' && target.protocol !== 'https:') return undefined;
    const hosts = token.hosts ?? [login.hostname];
    return hostMatches(target.hostname, hosts) ? { [token.header]: `${token.prefix}${value}` } : undefined;
  }

  private async csrfHeader(
    session: JobSession,
    auth: AuthConfig,
    url: string,
    method: string,
  ): Promise<Record<string, string> | undefined> {
    if (auth.csrf === undefined || SAFE_METHODS.has(method)) return undefined;
    const cookies = await session.jar.jar.getCookies(url);
    const value = cookies.find((cookie) => cookie.key === auth.csrf?.cookie)?.value;
    return value === undefined ? undefined : { [auth.csrf.header]: value };
  }

  /** Why a page says its session is logged out, if it does. */
  loggedOut(page: FetchedPage, auth: AuthConfig, jobUrl: string): LoggedOutSign | undefined {
    return loggedOutSign(page, auth, jobUrl);
  }

  /**
   * Before a job's request: a login that expires within the margin is renewed now (a refresh when
   * the session holds a refresh token), and a token tenant's session without a token gets one,
   * so that no request fails mid-crawl for an expiry known in advance.
   */
  async beforeFetch(session: JobSession, tenant: FetchTenant, auth: AuthConfig): Promise<void> {
    const now = Date.now();
    const state = session.auth;
    if (!this.due(state, auth, now)) return;
    if (coolingDown(state, now)) {
      // A token tenant cannot fetch without a token; a cookie login goes on with what it has.
      if (auth.login.token !== undefined) this.refuse(state.refused, auth);
      return;
    }
    const seen = state?.changedAt;
    await renewAuthOnce(session, () => this.renewal(session, tenant, auth, 'refresh_first'), {
      leaseMs: this.options.leaseMs,
      settled: (stored) =>
        coolingDown(stored, Date.now()) || (stored?.changedAt !== seen && !this.due(stored, auth, Date.now())),
    });
    this.refuseIfRefused(session, auth);
  }

  /**
   * After a page said the session is logged out, its request sent with the login `seen` (the
   * auth state's `changedAt` then): logs in once across the fleet (a rejected bearer token is
   * refreshed first), unless another worker logged in or was refused since, or the session's
   * refused login is cooling down. `logged_in_just_now`: a 403 (or the tenant's sign) for a
   * request that carried a login a few seconds old: logging in again would not help.
   */
  async renewAfter(
    session: JobSession,
    tenant: FetchTenant,
    auth: AuthConfig,
    sign: LoggedOutSign,
    seen: string | undefined,
  ): Promise<'renewed' | 'logged_in_just_now'> {
    const now = Date.now();
    const state = session.auth;
    if (coolingDown(state, now)) this.refuse(state.refused, auth);
    // A 403 or the tenant's own sign may mean "not for this user" rather than "logged out":
    // right after a login that did not help, logging in again would not either.
    if (
      (sign === 'forbidden' || sign === 'tenant_check') &&
      state?.changedAt === seen &&
      holdsLogin(state, now) &&
      now - Date.parse(state.loggedInAt as string) < RELOGIN_AFTER_MS
    )
      return 'logged_in_just_now';
    await renewAuthOnce(
      session,
      () => this.renewal(session, tenant, auth, sign === 'token_rejected' ? 'refresh_first' : 'login'),
      {
        leaseMs: this.options.leaseMs,
        settled: (stored) => coolingDown(stored, Date.now()) || stored?.changedAt !== seen,
      },
    );
    this.refuseIfRefused(session, auth);
    return 'renewed';
  }

  /** Whether a session's login must be renewed before its next request. */
  private due(state: AuthState | undefined, auth: AuthConfig, now: number): boolean {
    const tokens = auth.login.token !== undefined;
    // A login without a token (an older worker's, or a cookie login before tokens were set up)
    // is no login for a token tenant.
    if (!holdsLogin(state, now) || (tokens && state.token === undefined)) return tokens;
    const expiresAt = Date.parse(state.expiresAt);
    const lifetime = expiresAt - Date.parse(state.loggedInAt as string);
    const margin = Math.min(auth.refreshMarginSeconds * 1000, lifetime / 4);
    return expiresAt - now <= margin;
  }

  private refuseIfRefused(session: JobSession, auth: AuthConfig): void {
    const refused = session.auth?.refused;
    if (refused !== undefined) this.refuse(refused, auth);
  }

  private refuse(refused: RefusedLogin, auth: AuthConfig): never {
    const waitMs = Date.parse(refused.until) - Date.now();
    // Held jobs spend no attempt: after a few refusals in a row they go to the DLQ after all, and
    // they wake spread out, not all at the cool-down's last millisecond.
    if (auth.refused.jobs === 'wait' && waitMs > 0 && refused.count < MAX_WAITED_REFUSALS)
      throw new LoginCoolingDownError(waitMs + Math.random() * Math.min(waitMs / 10, 30_000), refused);
    throw new LoginRefusedError(refused);
  }

  /** A refresh when possible and asked for, else a full login: the new auth state either way. */
  private async renewal(
    session: JobSession,
    tenant: FetchTenant,
    auth: AuthConfig,
    mode: RenewalMode,
  ): Promise<AuthState> {
    const secrets = new SecretResolver(this.env, this.options.readFile);
    const refreshToken = session.auth?.refreshToken;
    if (mode === 'refresh_first' && auth.refresh !== undefined && refreshToken !== undefined) {
      const refreshed = await this.refresh(session, tenant, auth, refreshToken, secrets);
      if (refreshed !== undefined) return refreshed;
    }
    return this.login(session, tenant, auth, secrets);
  }

  private async login(
    session: JobSession,
    tenant: FetchTenant,
    auth: AuthConfig,
    secrets: SecretResolver,
  ): Promise<AuthState> {
    const { login } = auth;
    const jar = session.jar;
    const mark = jar.changes.length;
    if (login.browser !== undefined) return this.browserLogin(session, tenant, auth, secrets, mark);
    let request: LoginRequest;
    if (login.page !== undefined) {
      const page = await this.send(session, tenant, auth, {
        url: login.page,
        method: 'GET',
        headers: secrets.resolveRecord(login.headers),
      });
      const down = unavailable(page, 'the login page');
      if (down !== undefined) throw down;
      if (page.status >= 400)
        return this.refused(session, tenant, auth, secrets, page, `the login page answered HTTP ${page.status}`);
      const fields = Object.keys(login.form ?? {});
      // The HTML parser and selector engine (about 6 MB of a worker's memory) load with the first
      // form login, not in every worker.
      const { findLoginForm } = await import('./login-form.js');
      const form = findLoginForm(page.body.toString('utf8'), page.finalUrl, {
        fields,
        selector: login.formSelector,
      });
      if (form === undefined) {
        const wanted = login.formSelector ?? `holding ${fields.join(', ') || 'a password field'}`;
        return this.refused(session, tenant, auth, secrets, page, `no login form (${wanted}) on ${page.finalUrl}`);
      }
      // Credentials go only where the tenant sent the worker (the login page's own origin: no other
      // host, no downgrade to http), and never in a URL.
      const target = new URL(form.action).origin;
      if (target !== new URL(page.finalUrl).origin && target !== new URL(login.page).origin) {
        const message = `the login form on ${page.finalUrl} posts to another origin (${target}); no credentials sent`;
        return this.refused(session, tenant, auth, secrets, page, message);
      }
      if ((login.method ?? form.method) === 'GET') {
        const message = `the login form on ${page.finalUrl} sends GET, which would put credentials in a URL; none sent`;
        return this.refused(session, tenant, auth, secrets, page, message);
      }
      request = buildFormSubmission(form, login, page.finalUrl, secrets);
    } else {
      request = buildLoginRequest(login, secrets);
    }
    const answer = await this.send(session, tenant, auth, request);
    const down = unavailable(answer, 'the login');
    if (down !== undefined) throw down;
    const cookieNames = await this.cookieNames(session, login.url ?? (login.page as string));
    const failure = loginFailure(answer, login, cookieNames);
    if (failure !== undefined) return this.refused(session, tenant, auth, secrets, answer, failure);
    let token: string | undefined;
    let refreshToken: string | undefined;
    let expiresIn: number | undefined;
    if (login.token !== undefined) {
      const json = parseJsonBody(answer.body);
      token = stringAt(json, login.token.path);
      if (token === undefined)
        return this.refused(
          session,
          tenant,
          auth,
          secrets,
          answer,
          `the login answer has no token at ${login.token.path}`,
        );
      refreshToken = login.token.refreshPath === undefined ? undefined : stringAt(json, login.token.refreshPath);
      expiresIn = login.token.expiresInPath === undefined ? undefined : secondsAt(json, login.token.expiresInPath);
    }
    const expiresAt = expiresIn !== undefined ? Date.now() + expiresIn * 1000 : this.cookieExpiry(session, mark, auth);
    this.options.observer?.sessionLogin?.('login', 'ok');
    return this.loggedIn(auth, { token, refreshToken, expiresAt });
  }

  /**
   * A login in the browser: the login page rendered as the session, the fields filled from
   * secrets read now, the submit clicked, the page it lands on checked as an HTTP login's answer
   * is (with `waitFor`, the selector showing is the sign, whatever the URL).
   */
  private async browserLogin(
    session: JobSession,
    tenant: FetchTenant,
    auth: AuthConfig,
    secrets: SecretResolver,
    mark: number,
  ): Promise<AuthState> {
    const { login } = auth;
    const browser = this.options.browser;
    const page = login.page as string;
    if (browser === undefined)
      throw Object.assign(
        new Error(`the tenant logs in with a browser (login.browser), and this worker has none it can start`),
        { code: 'ERR_BROWSER_UNAVAILABLE' },
      );
    const answer = await browser.submitForm(
      { url: page, method: 'GET', headers: secrets.resolveRecord(login.headers), cookieJar: session.jar, session },
      tenant,
      {
        fields: secrets.resolveRecord(login.form ?? {}),
        submit: login.browser?.submit,
        waitFor: login.browser?.waitFor,
        formSelector: login.formSelector,
      },
    );
    const down = unavailable(answer, 'the login');
    if (down !== undefined) throw down;
    const cookieNames = await this.cookieNames(session, page);
    // With `waitFor`, a login that stays on its page (a script) is fine once the selector showed.
    const checked = login.browser?.waitFor === undefined ? login : { ...login, page: undefined };
    const failure = loginFailure(answer, checked, cookieNames);
    if (failure !== undefined) return this.refused(session, tenant, auth, secrets, answer, failure);
    this.options.observer?.sessionLogin?.('login', 'ok');
    return this.loggedIn(auth, {
      token: undefined,
      refreshToken: undefined,
      expiresAt: this.cookieExpiry(session, mark, auth),
    });
  }

  /** A refreshed token, or undefined when the site refused the refresh (then: a full login). */
  private async refresh(
    session: JobSession,
    tenant: FetchTenant,
    auth: AuthConfig,
    refreshToken: string,
    secrets: SecretResolver,
  ): Promise<AuthState | undefined> {
    const refresh = auth.refresh;
    const token = auth.login.token;
    if (refresh === undefined || token === undefined) return undefined;
    const answer = await this.send(session, tenant, auth, buildRefreshRequest(refresh, refreshToken, secrets));
    const down = unavailable(answer, 'the token refresh');
    if (down !== undefined) throw down;
    const json = answer.status < 400 ? parseJsonBody(answer.body) : undefined;
    const access = stringAt(json, refresh.path ?? token.path);
    if (access === undefined) {
      this.options.observer?.sessionLogin?.('refresh', 'refused');
      this.options.logger.info(
        { session_id: session.hashedId, status: answer.status },
        'token refresh refused; logging the session in again',
      );
      return undefined;
    }
    const rotatedPath = refresh.refreshPath ?? token.refreshPath;
    const rotated = rotatedPath === undefined ? undefined : stringAt(json, rotatedPath);
    const expiresInPath = refresh.expiresInPath ?? token.expiresInPath;
    const expiresIn = expiresInPath === undefined ? undefined : secondsAt(json, expiresInPath);
    this.options.observer?.sessionLogin?.('refresh', 'ok');
    return this.loggedIn(auth, {
      token: access,
      refreshToken: rotated ?? refreshToken,
      expiresAt: Date.now() + (expiresIn ?? auth.ttlSeconds) * 1000,
    });
  }

  private loggedIn(
    auth: AuthConfig,
    login: { token: string | undefined; refreshToken: string | undefined; expiresAt: number },
  ): AuthState {
    const now = Date.now();
    // A refresh token may outlive its access token: the slate stays while it may still work.
    const keepUntil =
      login.refreshToken === undefined ? login.expiresAt : Math.max(login.expiresAt, now + auth.ttlSeconds * 1000);
    return {
      changedAt: new Date(now).toISOString(),
      loggedInAt: new Date(now).toISOString(),
      expiresAt: new Date(login.expiresAt).toISOString(),
      token: login.token,
      refreshToken: login.refreshToken,
      keepUntil: new Date(keepUntil).toISOString(),
    };
  }

  /**
   * A refused login, recorded for the fleet: no job of the session tries again before the
   * cool-down ends, and each refusal in a row doubles it. The answer's start is kept for the DLQ
   * entry with every secret of this login (and the session's tokens) scrubbed from it.
   */
  private refused(
    session: JobSession,
    tenant: FetchTenant,
    auth: AuthConfig,
    secrets: SecretResolver,
    answer: FetchedPage,
    message: string,
  ): AuthState {
    const now = Date.now();
    const count = (session.auth?.refused?.count ?? 0) + 1;
    const { cooldownSeconds, maxCooldownSeconds } = auth.refused;
    const cooldownMs = Math.min(cooldownSeconds * 2 ** (count - 1), maxCooldownSeconds) * 1000;
    const raw = secrets.scrub(
      answer.body
        .subarray(0, SNIPPET_CHARS * 4)
        .toString('utf8')
        .slice(0, SNIPPET_CHARS),
      [session.auth?.token, session.auth?.refreshToken],
    );
    const until = new Date(now + cooldownMs).toISOString();
    this.options.observer?.sessionLogin?.('login', 'refused');
    this.options.logger.warn(
      { session_id: session.hashedId, status: answer.status, refusals: count, cooldown_ms: cooldownMs },
      `login refused: ${message}; the session's jobs do not try again before ${until}`,
    );
    return {
      changedAt: new Date(now).toISOString(),
      refused: {
        at: new Date(now).toISOString(),
        until,
        count,
        status: answer.status,
        message,
        snippet: tenant.config.redactPii ? redactPii(raw) : raw,
      },
      // Kept past the cool-down, so that a refusal after it still counts as one more in a row.
      keepUntil: new Date(now + cooldownMs + maxCooldownSeconds * 1000).toISOString(),
    };
  }

  /** A login request, sent in the session (its jar) with the tenant's CSRF echo. */
  private async send(
    session: JobSession,
    tenant: FetchTenant,
    auth: AuthConfig,
    request: LoginRequest,
  ): Promise<FetchedPage> {
    const csrf = await this.csrfHeader(session, auth, request.url, request.method);
    return this.options.fetcher.fetch(
      { ...request, headers: { ...request.headers, ...csrf }, cookieJar: session.jar },
      tenant,
    );
  }

  /**
   * When the login runs out, as the site says: the earliest expiry of the cookies the login set
   * (or of `auth.sessionCookie`), else `auth.ttlSeconds` from now.
   */
  private cookieExpiry(session: JobSession, mark: number, auth: AuthConfig): number {
    const now = Date.now();
    let earliest: number | undefined;
    for (const change of session.jar.changes.slice(mark)) {
      const cookie = Cookie.parse(change.setCookie);
      if (cookie === undefined) continue;
      if (auth.sessionCookie !== undefined && cookie.key !== auth.sessionCookie) continue;
      const expiry = cookie.expiryTime(new Date(change.at));
      if (expiry === undefined || !Number.isFinite(expiry) || expiry <= now) continue;
      earliest = earliest === undefined ? expiry : Math.min(earliest, expiry);
    }
    return earliest ?? now + auth.ttlSeconds * 1000;
  }

  private async cookieNames(session: JobSession, url: string): Promise<Set<string>> {
    const cookies = await session.jar.jar.getCookies(url);
    return new Set(cookies.map((cookie) => cookie.key));
  }
}

function stringAt(json: unknown, path: string): string | undefined {
  const value = valueAt(json, path);
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function secondsAt(json: unknown, path: string): number | undefined {
  const value = Number(valueAt(json, path));
  return Number.isFinite(value) && value > 0 ? value : undefined;
}
