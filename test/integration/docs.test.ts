import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadConfig, parseConfig } from '@crawlfleet/core';
import { describe, expect, it } from 'vitest';

const root = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));

describe('the configuration the docs show', () => {
  it('loads the example config in infra/', () => {
    const config = loadConfig({ path: root('infra/crawlfleet.config.example.json') });
    expect(Object.keys(config.tenants)).toEqual(['default', 'intranet', 'shop', 'api', 'app']);
    expect(config.tenants.shop?.auth?.login.form?.password).toBe('${SHOP_PASSWORD}');
    expect(config.tenants.api?.auth?.login.token?.path).toBe('access');
    expect(config.tenants.app?.auth?.login.browser?.submit).toBe('button[type=submit]');
    expect(config.tenants.app?.render.block).toEqual(['image', 'media', 'font']);
    expect(config.render.waitUntil).toBe('load');
  });

  it("parses the JSON in README's config section", () => {
    const readme = readFileSync(root('README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Config file'));
    const block = /```json\n([\s\S]*?)```/.exec(section)?.[1];
    expect(block).toBeDefined();
    const config = parseConfig(JSON.parse(String(block)));
    expect(config.jobs.retries).toBe(3);
    expect(config.sessions.reauthLeaseMs).toBe(15_000);
  });

  it("parses the login examples in README's Logins section", () => {
    const readme = readFileSync(root('README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('### Logins'));
    const block = /```json\n([\s\S]*?)```/.exec(section)?.[1];
    const config = parseConfig(JSON.parse(String(block)));
    expect(config.tenants.shop?.auth?.login.page).toBe('https://shop.example/accounts/login/');
    expect(config.tenants.api?.auth?.refresh?.json).toEqual({ refresh: '{refresh}' });
  });
});
