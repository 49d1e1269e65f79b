import type { FetchJob, TenantConfig } from '@crawlfleet/core';
import { type ProxyEndpoint, type TlsFamily, tlsFamilyOf } from '@crawlfleet/fetcher';
import type { JobSession, SessionProfile } from '@crawlfleet/sessions';
import { HeaderProfiles } from './header-profiles.js';

/** What a request is sent as: its headers (the job's own last) and its TLS handshake. */
export interface RequestIdentity {
  headers: Record<string, string> | undefined;
  tls: TlsFamily;
  /**
   * For a session's request: whether it goes out exactly as its profile says (user agent, TLS
   * family, proxy); a job's own User-Agent header, or a proxy the profile does not name, breaks it.
   */
  consistent?: boolean;
}

function userAgentOf(headers: Record<string, string> | undefined): string | undefined {
  if (headers === undefined) return undefined;
  for (const [name, value] of Object.entries(headers)) if (name.toLowerCase() === 'user-agent') return value;
  return undefined;
}

/**
 * A session's identity, kept for life so a site never sees it change: a user agent, for
 * `identity.profile: browser` a browser's header set, the TLS handshake of that browser's family,
 * and its proxy, stored in its profile slate by its first job. Requests without a session are
 * sent with the tenant's user agent and the TLS family it names.
 */
export class SessionIdentities {
  /** Browser-like header profiles for new sessions of `identity.profile: browser` tenants. */
  private readonly headerProfiles = new HeaderProfiles();

  constructor(private readonly defaultUserAgent: string) {}

  async of(
    data: FetchJob,
    tenant: TenantConfig,
    session: JobSession | undefined,
    proxy: ProxyEndpoint | undefined,
  ): Promise<RequestIdentity> {
    if (session === undefined)
      return { headers: data.headers, tls: tlsFamilyOf(tenant.userAgent ?? this.defaultUserAgent) };
    const browser = tenant.identity.profile === 'browser';
    if (browser && session.profile === undefined) await this.headerProfiles.ready(tenant);
    const profile = session.ensureProfile(() => this.create(data, tenant, proxy, browser));
    const tls = (profile.tls as TlsFamily | undefined) ?? tlsFamilyOf(profile.userAgent);
    const headers = { ...(profile.headers ?? { 'user-agent': profile.userAgent }), ...data.headers };
    const consistent = userAgentOf(headers) === profile.userAgent && proxy?.id === profile.proxy;
    return { headers, tls, consistent };
  }

  /**
   * Stores a new session's profile, naming `proxy`, before its first request
   * (`JobSession.claimProfile`): the first job's stands, on every worker.
   */
  async claim(
    data: FetchJob,
    tenant: TenantConfig,
    session: JobSession,
    proxy: ProxyEndpoint | undefined,
  ): Promise<SessionProfile> {
    const browser = tenant.identity.profile === 'browser';
    if (browser) await this.headerProfiles.ready(tenant);
    return session.claimProfile(this.create(data, tenant, proxy, browser));
  }

  private create(
    data: FetchJob,
    tenant: TenantConfig,
    proxy: ProxyEndpoint | undefined,
    browser: boolean,
  ): SessionProfile {
    // Seeded by the session and its proxy: the same on every worker, and a new identity when the
    // session moves to another proxy.
    const seed = `${data.tenant}/${data.sessionId}/${proxy?.id ?? ''}`;
    const generated = browser ? this.headerProfiles.create(tenant, seed) : undefined;
    const userAgent = generated?.['user-agent'] ?? tenant.userAgent ?? this.defaultUserAgent;
    return {
      userAgent,
      tls: tlsFamilyOf(userAgent),
      createdAt: new Date().toISOString(),
      ...(generated === undefined ? {} : { headers: generated }),
      ...(proxy === undefined ? {} : { proxy: proxy.id }),
    };
  }
}
