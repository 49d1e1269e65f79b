import { createHash } from 'node:crypto';
import * as zlib from 'node:zlib';
import type { TenantConfig } from '@crawlfleet/core';
import type { HeaderGenerator } from 'header-generator';

/** Content codings this Node can decode (zstd only where zlib has it, Node 22.15+). */
const DECODABLE = new Set(['gzip', 'deflate', 'br', ...('createZstdDecompress' in zlib ? ['zstd'] : [])]);

/** Accept-Encoding with only what the fetcher can decode, in the browser's order. */
function decodable(acceptEncoding: string): string {
  return acceptEncoding
    .split(',')
    .map((coding) => coding.trim())
    .filter((coding) => DECODABLE.has(coding.split(';')[0] ?? ''))
    .join(', ');
}

/** One generator per set of locales and browsers. */
function generatorKey(tenant: TenantConfig): string {
  return `${tenant.identity.locales.join(',')}/${tenant.identity.browsers.join(',')}`;
}

/** mulberry32: a small seeded generator of numbers in [0, 1), as Math.random gives. */
function seeded(seed: string): () => number {
  let state = createHash('sha256').update(seed).digest().readUInt32BE(0);
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Browser-like header profiles for sessions of tenants with `identity.profile: browser`, from
 * Apify's `header-generator` (a Bayesian network of real browsers' headers, as Crawlee uses): a
 * user agent with the Accept, Accept-Language, Accept-Encoding and `sec-ch-ua*` headers that
 * browser sends, in its order. The generator loads on the first such tenant's first job, so
 * other workers never carry it. A session's profile is drawn with randomness seeded by its name
 * (and its proxy's): the first jobs of a new session, on any worker, all send the same headers
 * before any of them has stored the profile (as a session's proxy is picked by its name).
 */
export class HeaderProfiles {
  private readonly generators = new Map<string, HeaderGenerator>();
  private loading: Promise<typeof import('header-generator')> | undefined;

  /** Loads the generator for this tenant's locales and browsers; resolves at once once loaded. */
  async ready(tenant: TenantConfig): Promise<void> {
    const key = generatorKey(tenant);
    if (this.generators.has(key)) return;
    this.loading ??= import('header-generator');
    const { HeaderGenerator } = await this.loading;
    if (!this.generators.has(key))
      this.generators.set(
        key,
        new HeaderGenerator({
          browsers: [...tenant.identity.browsers],
          devices: ['desktop'],
          operatingSystems: ['windows', 'macos', 'linux'],
          locales: [...tenant.identity.locales],
        }),
      );
  }

  /** The headers of a new session's profile (after `ready`), the tenant's pinned user agent kept. */
  create(tenant: TenantConfig, session: string): Record<string, string> {
    const generator = this.generators.get(generatorKey(tenant));
    if (generator === undefined) throw new Error('HeaderProfiles.create before ready');
    // The generator draws with Math.random only; for this synchronous call it draws from the seed.
    const random = Math.random;
    Math.random = seeded(session);
    let drawn: Record<string, string>;
    try {
      // A copy of the locales: the generator shuffles the array it is given in place.
      drawn = generator.getHeaders({ locales: [...tenant.identity.locales] });
    } finally {
      Math.random = random;
    }
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(drawn)) {
      if (name === 'accept-encoding') headers[name] = decodable(value);
      else if (name === 'user-agent' && tenant.userAgent !== undefined) headers[name] = tenant.userAgent;
      else headers[name] = value;
    }
    return headers;
  }
}
