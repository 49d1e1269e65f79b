import { createHash } from 'node:crypto';
import { SecretResolver } from '@crawlfleet/auth';
import type { ProxyConfig } from '@crawlfleet/core';
import type { ProxyEndpoint } from '@crawlfleet/fetcher';

/** A configured proxy: its safe id, and its URL as written (credentials as `${NAME}`). */
interface ConfiguredProxy {
  id: string;
  template: string;
}

interface Pool {
  proxies: ConfiguredProxy[];
  /** Where the next request without a session goes in this pool (per worker). */
  next: number;
}

interface Route {
  hosts: string[];
  pool: Pool;
}

/** `scheme://host:port` of a proxy URL: what logs, metrics and profiles name it by. */
export function proxyId(template: string): string {
  const url = new URL(template.replace(/\$\{[^}]*\}/g, 'x'));
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  return `${url.protocol}//${url.hostname}:${port}`;
}

/**
 * The ids of a tenant's proxies: `scheme://host:port`, and where one gateway is listed with
 * several users (providers pick the exit by user name), `scheme://host:port#` and 8 hex digits
 * of the URL as written, so each is its own identity, breaker and socket pool. The URL as written
 * names secrets as `${NAME}`, so the digits reveal no credential.
 */
function proxyIds(templates: readonly string[]): Map<string, string> {
  const byGateway = new Map<string, Set<string>>();
  for (const template of templates) {
    const gateway = proxyId(template);
    byGateway.set(gateway, (byGateway.get(gateway) ?? new Set()).add(template));
  }
  const ids = new Map<string, string>();
  for (const [gateway, users] of byGateway)
    for (const template of users)
      ids.set(
        template,
        users.size === 1 ? gateway : `${gateway}#${createHash('sha256').update(template).digest('hex').slice(0, 8)}`,
      );
  return ids;
}

function hostMatches(pattern: string, host: string): boolean {
  if (pattern.startsWith('*.')) return host.endsWith(pattern.slice(1)) || host === pattern.slice(2);
  return host === pattern;
}

/** The pool's proxies that are up, in order; all of them when none is. */
function usable(pool: Pool, isDown: (proxy: string) => boolean): ConfiguredProxy[] {
  const up = pool.proxies.filter((proxy) => !isDown(proxy.id));
  return up.length > 0 ? up : pool.proxies;
}

/** A number from a session's name, the same on every worker. */
function spread(tenant: string, sessionId: string): number {
  return createHash('sha256').update(`${tenant}/${sessionId}`).digest().readUInt32BE(0);
}

/**
 * One tenant's proxies: which pool a target host routes to (the first route whose hosts match,
 * else the default `urls`), and which proxy of it a request takes. A session is bound to one
 * proxy of each pool: the one its profile names, while that proxy is still in the pool, else the
 * one its name picks, the same on every worker with no coordination. Requests without a session
 * take the pool's proxies in turn. Credentials are read from the environment or a secret file
 * when a proxy is first used, and stay in memory only.
 */
export class ProxyPlan {
  private readonly routes: Route[];
  private readonly fallback: Pool | undefined;
  private readonly resolved = new Map<string, ProxyEndpoint>();
  private readonly secrets: SecretResolver;

  constructor(config: ProxyConfig, env: NodeJS.ProcessEnv = process.env) {
    const ids = proxyIds([...config.urls, ...config.routes.flatMap((route) => route.urls)]);
    const pool = (urls: readonly string[]): Pool => ({
      proxies: urls.map((template) => ({ id: ids.get(template) as string, template })),
      next: 0,
    });
    this.routes = config.routes.map((route) => ({ hosts: route.hosts, pool: pool(route.urls) }));
    this.fallback = config.urls.length > 0 ? pool(config.urls) : undefined;
    this.secrets = new SecretResolver(env, undefined, { name: 'the proxy', reason: 'proxy_secret_missing' });
  }

  private poolFor(host: string): Pool | undefined {
    return (
      this.routes.find((route) => route.hosts.some((pattern) => hostMatches(pattern, host)))?.pool ?? this.fallback
    );
  }

  /**
   * The proxy a session's request to `host` goes through; `bound` is the proxy its profile names.
   * A proxy that `isDown` is passed over (all of them down: the pool as it is). Undefined when no
   * pool covers the host (the request goes directly).
   */
  forSession(
    host: string,
    tenant: string,
    sessionId: string,
    bound: string | undefined,
    isDown: (proxy: string) => boolean = () => false,
  ): ProxyEndpoint | undefined {
    const pool = this.poolFor(host);
    if (pool === undefined) return undefined;
    const up = usable(pool, isDown);
    const kept = bound === undefined ? undefined : up.find((proxy) => proxy.id === bound);
    return this.endpoint(kept ?? (up[spread(tenant, sessionId) % up.length] as ConfiguredProxy));
  }

  /** The proxy a request without a session to `host` goes through: the pool's proxies that are up, in turn. */
  forRequest(host: string, isDown: (proxy: string) => boolean = () => false): ProxyEndpoint | undefined {
    const pool = this.poolFor(host);
    if (pool === undefined) return undefined;
    const up = usable(pool, isDown);
    const proxy = up[pool.next % up.length] as ConfiguredProxy;
    pool.next = (pool.next + 1) % up.length;
    return this.endpoint(proxy);
  }

  private endpoint(proxy: ConfiguredProxy): ProxyEndpoint {
    let endpoint = this.resolved.get(proxy.id);
    if (endpoint === undefined) {
      endpoint = { id: proxy.id, url: this.secrets.resolve(proxy.template) };
      this.resolved.set(proxy.id, endpoint);
    }
    return endpoint;
  }
}

/** The proxy plans of a worker's tenants, built on first use. */
export class ProxyPlans {
  private readonly plans = new Map<string, ProxyPlan | undefined>();

  /** The tenant's plan; undefined when it has no proxies. */
  of(tenant: string, config: ProxyConfig | undefined): ProxyPlan | undefined {
    if (!this.plans.has(tenant)) this.plans.set(tenant, config === undefined ? undefined : new ProxyPlan(config));
    return this.plans.get(tenant);
  }
}
