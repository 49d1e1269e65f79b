import type { LoginConfig, RefreshConfig } from '@crawlfleet/core';
import type { LoginForm } from './login-form.js';
import type { SecretResolver } from './secrets.js';

/** A request of a login, a refresh or a form submission: it lives only in memory. */
export interface LoginRequest {
  url: string;
  method: 'POST' | 'PUT' | 'GET';
  headers: Record<string, string>;
  body?: string | undefined;
}

const FORM_TYPE = 'application/x-www-form-urlencoded';

/** The request of a direct login (`auth.login.url`), with secrets read at this moment. */
export function buildLoginRequest(login: LoginConfig, secrets: SecretResolver): LoginRequest {
  return encodeRequest(login.url as string, login.method ?? 'POST', {
    form: login.form === undefined ? undefined : secrets.resolveRecord(login.form),
    json: login.json === undefined ? undefined : (secrets.resolveDeep(login.json) as Record<string, unknown>),
    headers: secrets.resolveRecord(login.headers),
  });
}

/**
 * The request of a token refresh: `{refresh}` in any value of `form`, `json` or `headers` stands
 * for the session's refresh token. With neither form nor json, `{ "refresh": token }` is sent.
 */
export function buildRefreshRequest(
  refresh: RefreshConfig,
  refreshToken: string,
  secrets: SecretResolver,
): LoginRequest {
  // Secrets first: a token is data, never read as a `${...}` reference.
  const withToken = (value: unknown): unknown => {
    if (typeof value === 'string') return value.split('{refresh}').join(refreshToken);
    if (Array.isArray(value)) return value.map(withToken);
    if (value !== null && typeof value === 'object')
      return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, withToken(item)]));
    return value;
  };
  const json =
    refresh.json === undefined && refresh.form === undefined
      ? { refresh: refreshToken }
      : refresh.json === undefined
        ? undefined
        : (withToken(secrets.resolveDeep(refresh.json)) as Record<string, unknown>);
  return encodeRequest(refresh.url, refresh.method, {
    form:
      refresh.form === undefined
        ? undefined
        : (withToken(secrets.resolveRecord(refresh.form)) as Record<string, string>),
    json,
    headers: withToken(secrets.resolveRecord(refresh.headers)) as Record<string, string>,
  });
}

/**
 * The submission of a login form found on `pageUrl`: every field a browser would send, with
 * the tenant's values (secrets resolved now) in place of the form's, and the Referer and Origin
 * a browser sends, which CSRF checks look at.
 */
export function buildFormSubmission(
  form: LoginForm,
  login: LoginConfig,
  pageUrl: string,
  secrets: SecretResolver,
): LoginRequest {
  const fields = form.fields.map(([name, value]): [string, string] => [name, value]);
  for (const [name, value] of Object.entries(login.form ?? {})) {
    const resolved = secrets.resolve(value);
    const at = fields.findIndex(([field]) => field === name);
    if (at === -1) fields.push([name, resolved]);
    else fields[at] = [name, resolved];
  }
  const body = new URLSearchParams(fields).toString();
  // Never GET: credentials do not go in a URL (the caller refuses such a form).
  const method = (login.method ?? form.method) === 'PUT' ? 'PUT' : 'POST';
  const headers = { referer: pageUrl, origin: new URL(pageUrl).origin, ...secrets.resolveRecord(login.headers) };
  return { url: form.action, method, headers: { 'content-type': FORM_TYPE, ...headers }, body };
}

function encodeRequest(
  url: string,
  method: 'POST' | 'PUT' | 'GET',
  parts: {
    form?: Record<string, string> | undefined;
    json?: Record<string, unknown> | undefined;
    headers: Record<string, string>;
  },
): LoginRequest {
  const { headers } = parts;
  if (parts.form !== undefined)
    return {
      url,
      method,
      headers: { 'content-type': FORM_TYPE, ...headers },
      body: new URLSearchParams(parts.form).toString(),
    };
  if (parts.json !== undefined)
    return {
      url,
      method,
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(parts.json),
    };
  return { url, method, headers };
}
