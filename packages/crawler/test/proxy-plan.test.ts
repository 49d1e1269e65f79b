import { describe, expect, it } from 'vitest';
import { ProxyPlan } from '../src/proxy-plan.js';

const env = { GATEWAY_PASSWORD: 'hunter2' };

describe('ProxyPlan ids', () => {
  it('names a proxy scheme://host:port, without its credentials', () => {
    const plan = new ProxyPlan({ urls: ['http://user:${GATEWAY_PASSWORD}@gw.example:8000'], routes: [] }, env);
    const endpoint = plan.forRequest('site.example');
    expect(endpoint).toEqual({ id: 'http://gw.example:8000', url: 'http://user:hunter2@gw.example:8000' });
  });

  it('keeps apart one gateway listed with several users: each its own id and credentials', () => {
    const urls = [
      'http://country-de:${GATEWAY_PASSWORD}@gw.example:8000',
      'http://country-fr:${GATEWAY_PASSWORD}@gw.example:8000',
    ];
    const plan = new ProxyPlan({ urls, routes: [] }, env);
    const first = plan.forRequest('site.example');
    const second = plan.forRequest('site.example');
    expect(first?.url).toBe('http://country-de:hunter2@gw.example:8000');
    expect(second?.url).toBe('http://country-fr:hunter2@gw.example:8000');
    expect(first?.id).toMatch(/^http:\/\/gw\.example:8000#[0-9a-f]{8}$/);
    expect(second?.id).toMatch(/^http:\/\/gw\.example:8000#[0-9a-f]{8}$/);
    expect(first?.id).not.toBe(second?.id);
    expect(`${first?.id}${second?.id}`).not.toContain('hunter2');
    // The same on every worker: a session keeps its proxy by this id.
    const again = new ProxyPlan({ urls: [...urls].reverse(), routes: [] }, env);
    expect(again.forSession('site.example', 't', 's', first?.id)?.url).toBe(first?.url);
  });
});
