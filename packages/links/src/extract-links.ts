import { Parser } from 'htmlparser2';

/** What a page links to, as a browser would read it: absolute http(s) URLs, fragments dropped. */
export interface PageLinks {
  /** `<a href>`, `<area href>`, `<link rel=next>`, the canonical URL and a meta refresh target, in page order, each once. */
  links: string[];
  /** `<link rel=canonical>`: the URL the page says it is. */
  canonical?: string | undefined;
  /** `<meta http-equiv=refresh content="N; url=...">`: where a browser goes next. */
  refresh?: string | undefined;
}

/** The most links kept from one page: a page of a million anchors must not flood the frontier. */
export const MAX_LINKS_PER_PAGE = 10_000;

/** `0; url=/next` or `5;URL='/next'` (the target of a meta refresh), or undefined. */
function refreshTarget(content: string): string | undefined {
  const match = /^\s*\d*(?:\.\d*)?\s*[;,]?\s*(?:url\s*=\s*)?(['"]?)(.+?)\1\s*$/i.exec(content);
  const target = match?.[2];
  // A bare number ("5") refreshes the page itself.
  return target === undefined || /^\d+(\.\d*)?$/.test(target) ? undefined : target;
}

function relTokens(value: string | undefined): string[] {
  return (value ?? '').toLowerCase().split(/\s+/).filter(Boolean);
}

/**
 * The links of an HTML page, read with htmlparser2 (a fast streaming parser, fed as the body
 * arrives): relative URLs are resolved against the first `<base href>` (itself resolved against
 * the page's URL) as a browser does; `javascript:`, `mailto:` and other schemes, and hrefs that do
 * not parse, are dropped; `#fragments` are removed; each URL is kept once. Attributes are decoded
 * (`&amp;`). What is inside `<script>`, `<style>` and comments is not a link.
 */
export function extractLinks(html: string | Buffer, pageUrl: string): PageLinks {
  let base = pageUrl;
  let baseSeen = false;
  const raw: string[] = [];
  let canonical: string | undefined;
  let refresh: string | undefined;
  const parser = new Parser(
    {
      onopentag(name, attributes) {
        if (name === 'base' && !baseSeen && attributes.href !== undefined) {
          baseSeen = true;
          const resolved = resolve(attributes.href, pageUrl, true);
          if (resolved !== undefined) base = resolved;
          return;
        }
        if ((name === 'a' || name === 'area') && attributes.href !== undefined) {
          raw.push(attributes.href);
        } else if (name === 'link' && attributes.href !== undefined) {
          const rel = relTokens(attributes.rel);
          if (rel.includes('canonical')) canonical ??= attributes.href;
          else if (rel.includes('next')) raw.push(attributes.href);
        } else if (name === 'meta' && attributes['http-equiv']?.toLowerCase() === 'refresh') {
          refresh ??= refreshTarget(attributes.content ?? '');
        }
      },
    },
    { decodeEntities: true, lowerCaseTags: true, lowerCaseAttributeNames: true },
  );
  parser.end(typeof html === 'string' ? html : html.toString('utf8'));

  const seen = new Set<string>();
  const links: string[] = [];
  const keep = (href: string | undefined): string | undefined => {
    const url = href === undefined ? undefined : resolve(href, base);
    if (url !== undefined && !seen.has(url) && links.length < MAX_LINKS_PER_PAGE) {
      seen.add(url);
      links.push(url);
    }
    return url;
  };
  for (const href of raw) keep(href);
  const canonicalUrl = keep(canonical);
  const refreshUrl = keep(refresh);
  return { links, canonical: canonicalUrl, refresh: refreshUrl };
}

/** An absolute http(s) URL without its fragment, or undefined. `keepFragment` for `<base>`. */
function resolve(href: string, against: string, keepFragment = false): string | undefined {
  const trimmed = href.trim();
  if (trimmed === '' || trimmed.startsWith('#')) return undefined;
  let url: URL;
  try {
    url = new URL(trimmed, against);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  if (!keepFragment) url.hash = '';
  return url.href;
}
