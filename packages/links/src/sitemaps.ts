import { gunzipSync } from 'node:zlib';
import { Parser } from 'htmlparser2';

/** What a sitemap file lists: other sitemaps (an index) or pages (a urlset). */
export interface SitemapDocument {
  kind: 'index' | 'urlset' | 'unknown';
  /** Each `<loc>`, in order (namespaced ones such as `image:loc` are not pages). */
  locs: string[];
}

/** The sitemap protocol's limit for one file, uncompressed. */
export const MAX_SITEMAP_BYTES = 50 * 1024 * 1024;

/**
 * Reads a sitemap (sitemaps.org): a `<urlset>` of pages or a `<sitemapindex>` of sitemaps, gzipped
 * or not (by its magic bytes, since servers label `.xml.gz` files every which way), with
 * htmlparser2 in XML mode, streaming, entities decoded. Larger than the protocol allows is cut.
 */
export function readSitemap(body: Buffer): SitemapDocument {
  const xml = body[0] === 0x1f && body[1] === 0x8b ? gunzipSync(body, { maxOutputLength: MAX_SITEMAP_BYTES }) : body;
  let kind: SitemapDocument['kind'] = 'unknown';
  const locs: string[] = [];
  let text: string | undefined;
  const parser = new Parser(
    {
      onopentag(name) {
        if (kind === 'unknown' && name === 'sitemapindex') kind = 'index';
        else if (kind === 'unknown' && name === 'urlset') kind = 'urlset';
        else if (name === 'loc') text = '';
      },
      ontext(data) {
        if (text !== undefined) text += data;
      },
      onclosetag(name) {
        if (name !== 'loc' || text === undefined) return;
        const loc = text.trim();
        if (loc !== '') locs.push(loc);
        text = undefined;
      },
    },
    { xmlMode: true, decodeEntities: true },
  );
  parser.end(xml.toString('utf8'));
  return { kind, locs };
}

/** The `Sitemap:` lines of a robots.txt, as absolute URLs. */
export function robotsSitemaps(robots: string, origin: string): string[] {
  const found: string[] = [];
  for (const line of robots.split(/\r?\n/)) {
    const match = /^\s*sitemap\s*:\s*(\S+)/i.exec(line);
    if (match?.[1] !== undefined && URL.canParse(match[1], origin)) found.push(new URL(match[1], origin).href);
  }
  return found;
}
