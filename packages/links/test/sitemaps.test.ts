import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { readSitemap, robotsSitemaps } from '../src/index.js';

describe('readSitemap', () => {
  it('reads the pages of a urlset, entities decoded, namespaced locs left out', () => {
    const xml = `<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">
      <url><loc> https://shop.example/a?x=1&amp;y=2 </loc><lastmod>2026-01-01</lastmod></url>
      <url><loc>https://shop.example/b</loc><image:image><image:loc>https://shop.example/b.png</image:loc></image:image></url>
    </urlset>`;
    expect(readSitemap(Buffer.from(xml))).toEqual({
      kind: 'urlset',
      locs: ['https://shop.example/a?x=1&y=2', 'https://shop.example/b'],
    });
  });

  it('reads an index of sitemaps, gzipped or not', () => {
    const xml = `<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><sitemap><loc>https://shop.example/s1.xml.gz</loc></sitemap></sitemapindex>`;
    expect(readSitemap(gzipSync(xml))).toEqual({ kind: 'index', locs: ['https://shop.example/s1.xml.gz'] });
  });

  it('says when a file is no sitemap', () => {
    expect(readSitemap(Buffer.from('<html><body>not found</body></html>')).kind).toBe('unknown');
  });
});

describe('robotsSitemaps', () => {
  it('takes every Sitemap: line, whatever its case, resolved against the origin', () => {
    const robots = 'User-agent: *\nDisallow: /x\nSitemap: https://shop.example/sitemap.xml\nsitemap:/more.xml\n';
    expect(robotsSitemaps(robots, 'https://shop.example')).toEqual([
      'https://shop.example/sitemap.xml',
      'https://shop.example/more.xml',
    ]);
  });
});
