import { parseConfig } from '@crawlfleet/core';
import type { FetchedPage } from '@crawlfleet/fetcher';
import { describe, expect, it } from 'vitest';
import { loggedOutSign, loginFailure } from '../src/index.js';

function authOf(auth: Record<string, unknown>) {
  const tenant = parseConfig({ tenants: { t: { auth } } }).tenants.t;
  if (tenant?.auth === undefined) throw new Error('no auth');
  return tenant.auth;
}

function page(status: number, finalUrl: string, body = '', headers: Record<string, string> = {}): FetchedPage {
  return {
    url: finalUrl,
    finalUrl,
    status,
    headers,
    body: Buffer.from(body),
    bodyBytes: body.length,
    redirects: 0,
    durationMs: 1,
  };
}

const formAuth = authOf({ login: { page: 'https://site.example/accounts/login/', form: { username: 'u' } } });

describe('knowing a session is logged out', () => {
  it('reads a redirect to the login page as logged out, whatever its query', () => {
    const landed = page(200, 'https://site.example/accounts/login/?next=/members/1');
    expect(loggedOutSign(landed, formAuth, 'https://site.example/members/1')).toBe('login_page');
  });

  it('does not call the login page logged out when the job asked for it', () => {
    const landed = page(200, 'https://site.example/accounts/login/');
    expect(loggedOutSign(landed, formAuth, 'https://site.example/accounts/login/')).toBeUndefined();
  });

  it('takes 401 with WWW-Authenticate: Bearer as a rejected token, and a 403 that is no challenge as logged out', () => {
    expect(
      loggedOutSign(
        page(401, 'https://a/x', '', { 'www-authenticate': 'Bearer error="invalid_token"' }),
        formAuth,
        'https://a/x',
      ),
    ).toBe('token_rejected');
    expect(loggedOutSign(page(401, 'https://a/x'), formAuth, 'https://a/x')).toBe('unauthorized');
    expect(loggedOutSign(page(403, 'https://a/x', '<h1>403 Forbidden</h1>'), formAuth, 'https://a/x')).toBe(
      'forbidden',
    );
    const waf = page(403, 'https://a/x', 'blocked', { 'cf-mitigated': 'challenge' });
    expect(loggedOutSign(waf, formAuth, 'https://a/x')).toBeUndefined();
  });

  it("applies the tenant's own signs: status, URL pattern and text", () => {
    const auth = authOf({
      login: { url: 'https://site.example/login', form: {} },
      loggedOut: { status: [419], url: '/signin', text: 'Please sign in' },
    });
    expect(loggedOutSign(page(419, 'https://a/x'), auth, 'https://a/x')).toBe('tenant_check');
    expect(loggedOutSign(page(200, 'https://a/signin?r=1'), auth, 'https://a/x')).toBe('tenant_check');
    expect(loggedOutSign(page(200, 'https://a/x', '<p>Please sign in</p>'), auth, 'https://a/x')).toBe('tenant_check');
    expect(loggedOutSign(page(200, 'https://a/x', '<p>Welcome</p>'), auth, 'https://a/x')).toBeUndefined();
  });
});

describe('judging a login', () => {
  it('by default: below 400 and, for a form login, not back on the login page', () => {
    expect(loginFailure(page(200, 'https://site.example/members/1'), formAuth.login, new Set())).toBeUndefined();
    expect(loginFailure(page(200, 'https://site.example/accounts/login/'), formAuth.login, new Set())).toBe(
      'the login landed back on the login page',
    );
    expect(loginFailure(page(401, 'https://site.example/x'), formAuth.login, new Set())).toBe(
      'the login answered HTTP 401',
    );
  });

  it("by the tenant's checks when it gives them: status, a cookie, text and absent text", () => {
    const { login } = authOf({
      login: {
        url: 'https://site.example/login',
        form: {},
        success: { status: [200], cookie: 'sessionid', text: 'Welcome', notText: 'Wrong password' },
      },
    });
    const good = page(200, 'https://site.example/home', 'Welcome back');
    expect(loginFailure(good, login, new Set(['sessionid']))).toBeUndefined();
    expect(loginFailure(good, login, new Set())).toBe('the login did not set the cookie sessionid');
    expect(loginFailure(page(302, 'https://site.example/home', 'Welcome'), login, new Set(['sessionid']))).toMatch(
      /HTTP 302/,
    );
    expect(
      loginFailure(page(200, 'https://site.example/home', 'Welcome. Wrong password'), login, new Set(['sessionid'])),
    ).toMatch(/failure text/);
  });
});
