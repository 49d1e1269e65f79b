import type { AuthConfig, LoginConfig } from '@crawlfleet/core';
import { classifyResponse } from '@crawlfleet/failures';
import type { FetchedPage } from '@crawlfleet/fetcher';

/** How much of a body the text checks read. */
const TEXT_WINDOW_BYTES = 64 * 1024;

/** Why a page says its session is logged out; `token_rejected` is tried with a refresh first. */
export type LoggedOutSign = 'unauthorized' | 'forbidden' | 'token_rejected' | 'login_page' | 'tenant_check';

function bodyText(page: FetchedPage): string {
  return page.body.subarray(0, TEXT_WINDOW_BYTES).toString('utf8');
}

/** `origin + path` of a URL, without its query: a login page is the same page whatever `next` says. */
function pageOf(url: string): string | undefined {
  try {
    const parsed = new URL(url);
    return `${parsed.origin}${parsed.pathname}`;
  } catch {
    return undefined;
  }
}

/** Worked out once per tenant config, not for every page: the login pages and the URL pattern. */
const pagesOf = new WeakMap<LoginConfig, ReadonlySet<string>>();
const patterns = new Map<string, RegExp>();

/** The login page and login URL of a tenant, as `origin + path`. */
export function loginPages(login: LoginConfig): ReadonlySet<string> {
  let pages = pagesOf.get(login);
  if (pages === undefined) {
    const found = new Set<string>();
    for (const url of [login.page, login.url]) {
      const page = url === undefined ? undefined : pageOf(url);
      if (page !== undefined) found.add(page);
    }
    pages = found;
    pagesOf.set(login, pages);
  }
  return pages;
}

function compiled(source: string): RegExp {
  let pattern = patterns.get(source);
  if (pattern === undefined) {
    pattern = new RegExp(source);
    patterns.set(source, pattern);
  }
  return pattern;
}

/**
 * Whether a page says its session needs a login: a 401 (a refresh first when the site asks for a
 * Bearer token), a 403 that is not a WAF or CAPTCHA challenge, landing on the login page (after
 * a redirect, whatever the query), or the tenant's own `loggedOut` signs. A job whose own URL is
 * the login page is not logged out for landing there.
 */
export function loggedOutSign(page: FetchedPage, auth: AuthConfig, jobUrl: string): LoggedOutSign | undefined {
  if (page.status === 401) {
    const challenge = String(page.headers['www-authenticate'] ?? '');
    return /^\s*bearer\b/i.test(challenge) ? 'token_rejected' : 'unauthorized';
  }
  if (page.status === 403) {
    const snippet = page.body.subarray(0, 2048).toString('utf8');
    const blocked = classifyResponse({ status: 403, headers: page.headers, bodySnippet: snippet });
    if (blocked?.failureClass !== 'compliance_blocked') return 'forbidden';
    return undefined;
  }
  const landed = pageOf(page.finalUrl);
  const asked = pageOf(jobUrl);
  if (landed !== undefined && landed !== asked && loginPages(auth.login).has(landed)) return 'login_page';
  const check = auth.loggedOut;
  if (check === undefined) return undefined;
  if (check.status?.includes(page.status)) return 'tenant_check';
  if (check.url !== undefined) {
    const pattern = compiled(check.url);
    if (pattern.test(page.finalUrl) && !pattern.test(jobUrl)) return 'tenant_check';
  }
  if (check.text !== undefined && bodyText(page).includes(check.text)) return 'tenant_check';
  return undefined;
}

/**
 * Whether a login answer (after its redirects) means the login held: the tenant's `success`
 * checks when it gives them, else an answer below 400 that (for a form login) did not land back
 * on the login page. `cookieNames` are the cookies the session's jar sends to the login URL now.
 */
export function loginFailure(
  answer: FetchedPage,
  login: LoginConfig,
  cookieNames: ReadonlySet<string>,
): string | undefined {
  const check = login.success;
  if (check === undefined) {
    if (answer.status >= 400) return `the login answered HTTP ${answer.status}`;
    if (login.page !== undefined && pageOf(answer.finalUrl) === pageOf(login.page))
      return 'the login landed back on the login page';
    return undefined;
  }
  if (check.status !== undefined && !check.status.includes(answer.status))
    return `the login answered HTTP ${answer.status}, not ${check.status.join(' or ')}`;
  if (check.cookie !== undefined && !cookieNames.has(check.cookie))
    return `the login did not set the cookie ${check.cookie}`;
  if (check.text !== undefined && !bodyText(answer).includes(check.text))
    return 'the page the login landed on lacks the success text';
  if (check.notText !== undefined && bodyText(answer).includes(check.notText))
    return 'the page the login landed on shows the failure text';
  return undefined;
}
