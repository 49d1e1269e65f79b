import { describe, expect, it } from 'vitest';
import { extractLinks, MAX_LINKS_PER_PAGE } from '../src/index.js';

const PAGE = 'https://shop.example/catalog/page.html?x=1';

describe('extractLinks', () => {
  it('resolves anchors against the page, drops fragments, other schemes and repeats, in page order', () => {
    const html = `<html><body>
      <a href="item-1.html">one</a>
      <a href="/about#team">about</a>
      <a href="https://other.example/x">other</a>
      <a href="item-1.html#reviews">one again</a>
      <a href="#top">top</a>
      <a href="javascript:void(0)">js</a>
      <a href="mailto:someone@example.com">mail</a>
      <a href="http://[bad">bad</a>
      <A HREF="  Item-2.html  ">two</A>
      <area href="map-target.html">
      <a href="?page=2&amp;sort=price">next query</a>
    </body></html>`;
    expect(extractLinks(html, PAGE).links).toEqual([
      'https://shop.example/catalog/item-1.html',
      'https://shop.example/about',
      'https://other.example/x',
      'https://shop.example/catalog/Item-2.html',
      'https://shop.example/catalog/map-target.html',
      'https://shop.example/catalog/page.html?page=2&sort=price',
    ]);
  });

  it('resolves against the first <base href>, itself relative to the page', () => {
    const html = `<head><base href="/v2/"><base href="https://ignored.example/"></head>
      <body><a href="item">item</a><a href="../up">up</a></body>`;
    expect(extractLinks(html, PAGE).links).toEqual(['https://shop.example/v2/item', 'https://shop.example/up']);
  });

  it('follows <link rel=next>, and reports the canonical URL and a meta refresh target as links too', () => {
    const html = `<head>
      <link rel="stylesheet" href="/style.css">
      <link rel="Next" href="/catalog?page=3">
      <link rel="canonical" href="https://shop.example/catalog/">
      <meta http-equiv="Refresh" content="0; URL='/moved'">
    </head><body></body>`;
    expect(extractLinks(html, PAGE)).toEqual({
      links: ['https://shop.example/catalog?page=3', 'https://shop.example/catalog/', 'https://shop.example/moved'],
      canonical: 'https://shop.example/catalog/',
      refresh: 'https://shop.example/moved',
    });
  });

  it('takes no links from scripts, styles or comments, and none from a refresh to the page itself', () => {
    const html = `<meta http-equiv="refresh" content="30">
      <script>document.write('<a href="/from-script">x</a>')</script>
      <style>a[href="/from-style"] {}</style>
      <!-- <a href="/commented">x</a> -->
      <a href="/real">real</a>`;
    expect(extractLinks(html, PAGE)).toEqual({
      links: ['https://shop.example/real'],
      canonical: undefined,
      refresh: undefined,
    });
  });

  it(`keeps at most ${MAX_LINKS_PER_PAGE} links of one page`, () => {
    const html = Array.from({ length: MAX_LINKS_PER_PAGE + 50 }, (_, i) => `<a href="/p/${i}">${i}</a>`).join('');
    const { links } = extractLinks(Buffer.from(html), PAGE);
    expect(links).toHaveLength(MAX_LINKS_PER_PAGE);
    expect(links.at(-1)).toBe(`https://shop.example/p/${MAX_LINKS_PER_PAGE - 1}`);
  });
});
