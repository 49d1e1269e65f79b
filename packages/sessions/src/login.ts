import type { LoginConfig } from '@crawlfleet/core';
import { NonRecoverableError } from '@crawlfleet/failures';

export interface LoginRequest {
  url: string;
  method: 'POST' | 'PUT' | 'GET';
  headers: Record<string, string>;
  body?: string | undefined;
}

/** Replaces `${NAME}` with the environment's NAME; a missing one fails the login clearly. */
function substitute(value: string, env: NodeJS.ProcessEnv): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_whole, name: string) => {
    const found = env[name];
    if (found === undefined)
      throw new NonRecoverableError('login_secret_missing', `the login hook needs ${name}, which is not set`);
    return found;
  });
}

function substituteDeep(value: unknown, env: NodeJS.ProcessEnv): unknown {
  if (typeof value === 'string') return substitute(value, env);
  if (Array.isArray(value)) return value.map((item) => substituteDeep(item, env));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substituteDeep(v, env)]));
  }
  return value;
}

/**
 * The login request of a tenant's re-auth hook, with secrets read from the environment at this
 * moment. The request lives only in memory: it is never queued, stored or logged.
 */
export function buildLoginRequest(login: LoginConfig, env: NodeJS.ProcessEnv = process.env): LoginRequest {
  const headers = substituteDeep(login.headers, env) as Record<string, string>;
  if (login.form !== undefined) {
    const form = substituteDeep(login.form, env) as Record<string, string>;
    return {
      url: login.url,
      method: login.method,
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(form).toString(),
    };
  }
  if (login.json !== undefined) {
    return {
      url: login.url,
      method: login.method,
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(substituteDeep(login.json, env)),
    };
  }
  return { url: login.url, method: login.method, headers };
}
