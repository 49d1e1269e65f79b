import type { FOLLOW_STRATEGIES } from '@crawlfleet/core';
import picomatch from 'picomatch';
import { getDomain } from 'tldts';

/** Which links a crawl follows, relative to the page they are on. */
export type FollowStrategy = (typeof FOLLOW_STRATEGIES)[number];

/** A crawl's scope, as its options give it. */
export interface ScopeOptions {
  follow: FollowStrategy;
  /** URL globs (`https://shop.example/products/**`); when any is given, a link must match one. */
  include?: readonly string[] | undefined;
  /** URL globs a link must match none of. */
  exclude?: readonly string[] | undefined;
  /** The deepest a followed page may be (seeds are depth 0); undefined: no limit. */
  maxDepth?: number | undefined;
}

/** Why a link is not followed, or `in` when it is. */
export type ScopeVerdict = 'in' | 'not_followed' | 'other_host' | 'excluded' | 'not_included' | 'too_deep';

/** Globs match whole URLs, case-insensitively; `*` stays within a path segment, `**` crosses them. */
function matcher(globs: readonly string[] | undefined): ((url: string) => boolean) | undefined {
  if (globs === undefined || globs.length === 0) return undefined;
  const tests = globs.map((glob) => picomatch(glob, { nocase: true, dot: true }));
  return (url) => tests.some((test) => test(url));
}

/** The registrable domain (`shop.example.co.uk` → `example.co.uk`), or the host itself (addresses, localhost). */
function domainOf(hostname: string): string {
  return getDomain(hostname, { allowPrivateDomains: true }) ?? hostname;
}

/**
 * A crawl's scope: whether a link found on a page at `depth` is followed. The strategy compares
 * the link with the page's own URL (the job's, not where a redirect took it, so a redirect off
 * the site does not widen the crawl): `same-hostname` (the exact host), `same-domain` (the
 * registrable domain, by the public suffix list of `tldts`), `same-origin` (scheme, host and
 * port), `all`, or `none`. Then `exclude` globs, `include` globs (any given: one must match)
 * and `maxDepth`.
 */
export class CrawlScope {
  private readonly included: ((url: string) => boolean) | undefined;
  private readonly excluded: ((url: string) => boolean) | undefined;

  constructor(private readonly options: ScopeOptions) {
    this.included = matcher(options.include);
    this.excluded = matcher(options.exclude);
  }

  /** Whether a link of the page at `pageUrl`, itself at `pageDepth`, is followed. */
  judge(link: string, pageUrl: string, pageDepth: number): ScopeVerdict {
    if (this.options.follow === 'none') return 'not_followed';
    if (this.options.maxDepth !== undefined && pageDepth + 1 > this.options.maxDepth) return 'too_deep';
    if (!this.sameSite(new URL(link), new URL(pageUrl))) return 'other_host';
    if (this.excluded?.(link)) return 'excluded';
    if (this.included !== undefined && !this.included(link)) return 'not_included';
    return 'in';
  }

  private sameSite(link: URL, page: URL): boolean {
    switch (this.options.follow) {
      case 'same-hostname':
        return link.hostname === page.hostname;
      case 'same-domain':
        return domainOf(link.hostname) === domainOf(page.hostname);
      case 'same-origin':
        return link.origin === page.origin;
      case 'all':
        return true;
      default:
        return false;
    }
  }
}
