import { parseConfig } from '@crawlfleet/core';
import { classifyError } from '@crawlfleet/failures';
import { Fetcher } from '@crawlfleet/fetcher';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';

describe('redirects to another origin', () => {
  let home: FixtureSite;
  let elsewhere: FixtureSite;
  let fetcher: Fetcher;
  const config = parseConfig({
    tenants: { t: { allowHosts: ['127.0.0.1'], headers: { 'x-tenant-secret': 's3cr3t' } } },
  });
  const tenant = { name: 't', config: config.tenants.t as NonNullable<typeof config.tenants.t> };

  beforeAll(async () => {
    [home, elsewhere] = await Promise.all([startFixtureSite(), startFixtureSite()]);
    fetcher = new Fetcher(config.fetch);
  });
  afterAll(async () => {
    fetcher.close();
    await Promise.all([home.close(), elsewhere.close()]);
  });

  const redirectTo = (url: string) => home.url(`/redirect?to=${encodeURIComponent(url)}`);

  it('keep only negotiation headers: tenant and job headers stay with the origin they were meant for', async () => {
    const page = await fetcher.fetch(
      {
        url: redirectTo(elsewhere.url('/echo')),
        method: 'GET',
        headers: { 'x-job-header': 'j0b', accept: 'application/json' },
      },
      tenant,
    );
    const echoed = JSON.parse(page.body.toString()).headers as Record<string, string>;
    expect(page.finalUrl).toBe(elsewhere.url('/echo'));
    expect(echoed['x-tenant-secret']).toBeUndefined();
    expect(echoed['x-job-header']).toBeUndefined();
    expect(echoed.accept).toBe('application/json');
    expect(echoed['user-agent']).toBe('crawlfleet/0.1');
  });

  it('keep the headers on a redirect within the same origin', async () => {
    const page = await fetcher.fetch(
      { url: home.url(`/redirect?to=${encodeURIComponent('/echo')}`), method: 'GET' },
      tenant,
    );
    expect(JSON.parse(page.body.toString()).headers['x-tenant-secret']).toBe('s3cr3t');
  });

  it('turn a POST answered with 302 into a GET without the body, as browsers do', async () => {
    const page = await fetcher.fetch(
      { url: redirectTo(elsewhere.url('/echo')), method: 'POST', body: 'password=secret' },
      tenant,
    );
    const echoed = JSON.parse(page.body.toString());
    expect(echoed.method).toBe('GET');
    expect(echoed.body).toBe('');
    expect(elsewhere.hits('/echo')).toBeGreaterThanOrEqual(1);
  });

  it('refuse to carry a request body to another origin on a 307', async () => {
    const url = home.url(`/redirect?status=307&to=${encodeURIComponent(elsewhere.url('/echo?from=307'))}`);
    const attempt = fetcher.fetch({ url, method: 'POST', body: 'password=secret' }, tenant);
    await expect(attempt).rejects.toMatchObject({ code: 'ERR_UNSAFE_REDIRECT' });
    expect(classifyError(await attempt.catch((e) => e))).toEqual({
      failureClass: 'non_recoverable',
      reason: 'unsafe_redirect',
    });
    expect(elsewhere.hits('/echo?from=307')).toBe(0);
  });
});
