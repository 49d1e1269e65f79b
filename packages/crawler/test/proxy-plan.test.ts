import { parseConfig } from '@crawlfleet/core';
import { describe, expect, it } from 'vitest';
import { ProxyPlan } from '../src/proxy-plan.js';

const env = { GATEWAY_PASSWORD: 'hunter2' };
/** A tenant's proxy config as the config file gives it, defaults filled in. */
const proxies = (urls: string[]) => {
  const proxy = parseConfig({ tenants: { t: { proxy: { urls } } } }).tenants.t?.proxy;
  if (proxy === undefined) throw new Error('no proxy config');
  return proxy;
};

describe('ProxyPlan ids', () => {
  it('names a proxy scheme://host:port, without its credentials', () => {
    const plan = new ProxyPlan(proxies(['http://user:${GATEWAY_PASSWORD}@gw.example:8000']), env);
    const endpoint = plan.forRequest('site.example');
    expect(endpoint).toEqual({ id: 'http://gw.example:8000', url: 'http://user:hunter2@gw.example:8000' });
  });

  it('keeps apart one gateway listed with several users: each its own id and credentials', () => {
    const urls = [
      'http://country-de:${GATEWAY_PASSWORD}@gw.example:8000',
      'http://country-fr:${GATEWAY_PASSWORD}@gw.example:8000',
    ];
    const plan = new ProxyPlan(proxies(urls), env);
    const first = plan.forRequest('site.example');
    const second = plan.forRequest('site.example');
    expect(first?.url).toBe('http://country-de:hunter2@gw.example:8000');
    expect(second?.url).toBe('http://country-fr:hunter2@gw.example:8000');
    expect(first?.id).toMatch(/^http:\/\/gw\.example:8000#[0-9a-f]{8}$/);
    expect(second?.id).toMatch(/^http:\/\/gw\.example:8000#[0-9a-f]{8}$/);
    expect(first?.id).not.toBe(second?.id);
    expect(`${first?.id}${second?.id}`).not.toContain('hunter2');
    // The same on every worker: a session keeps its proxy by this id.
    const again = new ProxyPlan(proxies([...urls].reverse()), env);
    expect(again.forSession('site.example', 't', 's', first?.id)?.url).toBe(first?.url);
  });
});
