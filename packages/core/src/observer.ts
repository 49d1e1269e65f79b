/**
 * What the crawl path reports as it works, for metrics. Every method is optional and cheap to
 * call; the packages that do the work depend on this interface, never on a metrics library.
 */
export interface CrawlObserver {
  /** A job ended: `stored`, `duplicate`, `retrying`, `dead_lettered`, `held_back`. */
  jobFinished?(outcome: string, errorClass: string | undefined, reason: string | undefined): void;
  /** A response arrived (any status) after `durationMs`, over TLS when `tls` is given. */
  fetched?(status: number, durationMs: number, tls?: { version: string; cipher: string }): void;
  /** A session's request went out as its profile says (true), or not: a job's own user agent, another proxy. */
  identityUsed?(consistent: boolean): void;
  /** A retry was scheduled after `backoffMs`. */
  retryScheduled?(backoffMs: number): void;
  /** A job succeeded after at least one retry (true) or was dead-lettered after retrying (false). */
  retryEnded?(succeeded: boolean): void;
  /**
   * Session state was read (`hydrate`) or written (`commit`) in `durationMs`, or moved into a
   * browser context before a render (`browser_in`) and back out of it after (`browser_out`).
   */
  stateSynced?(phase: 'hydrate' | 'commit' | 'browser_in' | 'browser_out', durationMs: number): void;
  /** A job changed this many of its session's cookies, over HTTP or in a browser page. */
  cookiesMutated?(source: 'http' | 'browser', count: number): void;
  /** A browser context opened for a render job (or a browser login) after `launchMs`. */
  contextOpened?(launchMs: number): void;
  /** A browser context closed. */
  contextClosed?(): void;
  /** A render job's page ended: `rendered`, `http_error`, `timeout`, `refused`, `failed`. */
  pageRendered?(outcome: string): void;
  /** Session cookies not put into a browser context: `expired`, `malformed`, `scope`, `samesite`. */
  browserCookiesDropped?(reason: string, count: number): void;
  /** A session's jar was stored: its serialized size, and how many cookies this job changed. */
  jarStored?(bytes: number, mutations: number): void;
  /** A session started with no stored state. */
  sessionCreated?(): void;
  /** A session's state was thrown away: `quarantine`, `discarded_slate`, `breaker_open`, ... */
  sessionInvalidated?(reason: string): void;
  /** A job ran on an ephemeral session because the session store did not answer. */
  sessionEphemeral?(): void;
  /** Cookies dropped to keep a session's jar within its browser-like limits. */
  cookiesEvicted?(count: number): void;
  /** A session logged in or refreshed its token (`ok`), or the site refused it. */
  sessionLogin?(kind: 'login' | 'refresh', outcome: 'ok' | 'refused'): void;
}
