import { NonRecoverableError } from '@crawlfleet/failures';
import { describe, expect, it } from 'vitest';
import { buildLoginRequest } from '../src/index.js';

const base = { url: 'https://shop.example/login', method: 'POST' as const, headers: {} };

describe('the login request of a re-auth hook', () => {
  it('form-encodes a form with secrets read from the environment', () => {
    const request = buildLoginRequest(
      { ...base, form: { user: 'alice', password: '${SHOP_PASSWORD}' } },
      { SHOP_PASSWORD: 'p&ss w' },
    );
    expect(request.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(request.body).toBe('user=alice&password=p%26ss+w');
  });

  it('sends JSON with substitution inside nested values', () => {
    const request = buildLoginRequest(
      { ...base, json: { auth: { key: 'k-${API_KEY}', scopes: ['${SCOPE}'] } } },
      { API_KEY: '123', SCOPE: 'read' },
    );
    expect(request.headers['content-type']).toBe('application/json');
    expect(JSON.parse(String(request.body))).toEqual({ auth: { key: 'k-123', scopes: ['read'] } });
  });

  it('substitutes headers too and keeps a configured content type', () => {
    const request = buildLoginRequest(
      { ...base, headers: { authorization: 'Basic ${CREDS}', 'content-type': 'text/plain' }, form: { a: '1' } },
      { CREDS: 'abc' },
    );
    expect(request.headers).toMatchObject({ authorization: 'Basic abc', 'content-type': 'text/plain' });
  });

  it('fails clearly, without a value, when a variable is missing', () => {
    const attempt = () => buildLoginRequest({ ...base, form: { password: '${NOT_SET_ANYWHERE}' } }, {});
    expect(attempt).toThrow(NonRecoverableError);
    expect(attempt).toThrow('the login hook needs NOT_SET_ANYWHERE, which is not set');
  });
});
