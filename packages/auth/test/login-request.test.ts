import { NonRecoverableError } from '@crawlfleet/failures';
import { describe, expect, it } from 'vitest';
import { buildLoginRequest, buildRefreshRequest, SecretResolver } from '../src/index.js';

const base = { url: 'https://shop.example/login', method: 'POST' as const, headers: {} };

describe('the request of a direct login', () => {
  it('form-encodes a form with secrets read from the environment', () => {
    const request = buildLoginRequest(
      { ...base, form: { user: 'alice', password: '${SHOP_PASSWORD}' } },
      new SecretResolver({ SHOP_PASSWORD: 'p&ss w' }),
    );
    expect(request.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(request.body).toBe('user=alice&password=p%26ss+w');
  });

  it('sends JSON with substitution inside nested values', () => {
    const request = buildLoginRequest(
      { ...base, json: { auth: { key: 'k-${API_KEY}', scopes: ['${SCOPE}'] } } },
      new SecretResolver({ API_KEY: '123', SCOPE: 'read' }),
    );
    expect(request.headers['content-type']).toBe('application/json');
    expect(JSON.parse(String(request.body))).toEqual({ auth: { key: 'k-123', scopes: ['read'] } });
  });

  it('substitutes headers too and keeps a configured content type', () => {
    const request = buildLoginRequest(
      { ...base, headers: { authorization: 'Basic ${CREDS}', 'content-type': 'text/plain' }, form: { a: '1' } },
      new SecretResolver({ CREDS: 'abc' }),
    );
    expect(request.headers).toMatchObject({ authorization: 'Basic abc', 'content-type': 'text/plain' });
  });

  it('defaults to POST when the login names no method', () => {
    const { method: _, ...noMethod } = base;
    expect(buildLoginRequest({ ...noMethod, headers: {}, json: {} }, new SecretResolver({})).method).toBe('POST');
  });

  it('fails clearly, without a value, when a variable is missing', () => {
    const attempt = () =>
      buildLoginRequest({ ...base, form: { password: '${NOT_SET_ANYWHERE}' } }, new SecretResolver({}));
    expect(attempt).toThrow(NonRecoverableError);
    expect(attempt).toThrow('the login hook needs NOT_SET_ANYWHERE, which is not set');
  });
});

describe('the request of a token refresh', () => {
  const refresh = { url: 'https://api.example/token/refresh', method: 'POST' as const, headers: {} };

  it('sends {"refresh": token} as JSON when the refresh names no body', () => {
    const request = buildRefreshRequest(refresh, 'r-123', new SecretResolver({}));
    expect(JSON.parse(String(request.body))).toEqual({ refresh: 'r-123' });
  });

  it('puts the refresh token where {refresh} stands, after secrets, and never reads the token as a reference', () => {
    const request = buildRefreshRequest(
      { ...refresh, form: { grant_type: 'refresh_token', refresh_token: '{refresh}', client_secret: '${CLIENT}' } },
      '${CLIENT}',
      new SecretResolver({ CLIENT: 'cs' }),
    );
    expect(new URLSearchParams(String(request.body)).get('refresh_token')).toBe('${CLIENT}');
    expect(new URLSearchParams(String(request.body)).get('client_secret')).toBe('cs');
  });
});
