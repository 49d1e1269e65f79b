import { describe, expect, it } from 'vitest';
import { CrawlScope } from '../src/index.js';

const PAGE = 'https://www.shop.example.co.uk/catalog/';
// Registrable domain: example.co.uk (co.uk is a public suffix).

describe('CrawlScope', () => {
  it('follows nothing with follow none', () => {
    expect(new CrawlScope({ follow: 'none' }).judge(`${PAGE}item`, PAGE, 0)).toBe('not_followed');
  });

  it('compares hosts, registrable domains or origins with the page the link is on', () => {
    const links = {
      sameHost: 'https://www.shop.example.co.uk/item',
      otherPort: 'https://www.shop.example.co.uk:8443/item',
      plainHttp: 'http://www.shop.example.co.uk/item',
      sibling: 'https://cdn.shop.example.co.uk/item',
      otherSite: 'https://other-shop.co.uk/item',
    };
    const verdicts = (follow: 'same-hostname' | 'same-domain' | 'same-origin' | 'all') =>
      Object.values(links).map((link) => new CrawlScope({ follow }).judge(link, PAGE, 0));
    expect(verdicts('same-hostname')).toEqual(['in', 'in', 'in', 'other_host', 'other_host']);
    expect(verdicts('same-domain')).toEqual(['in', 'in', 'in', 'in', 'other_host']);
    expect(verdicts('same-origin')).toEqual(['in', 'other_host', 'other_host', 'other_host', 'other_host']);
    expect(verdicts('all')).toEqual(['in', 'in', 'in', 'in', 'in']);
  });

  it('treats addresses and localhost as their own domain', () => {
    const scope = new CrawlScope({ follow: 'same-domain' });
    expect(scope.judge('http://127.0.0.1:8080/a', 'http://127.0.0.1:8080/', 0)).toBe('in');
    expect(scope.judge('http://127.0.0.2:8080/a', 'http://127.0.0.1:8080/', 0)).toBe('other_host');
  });

  it('applies exclude globs, then include globs, to the whole URL, case-insensitively', () => {
    const scope = new CrawlScope({
      follow: 'same-hostname',
      include: ['https://www.shop.example.co.uk/catalog/**', 'https://www.shop.example.co.uk/*.html'],
      exclude: ['**/*.pdf', '**/private/**'],
    });
    expect(scope.judge(`${PAGE}shoes/red`, PAGE, 0)).toBe('in');
    expect(scope.judge('https://www.shop.example.co.uk/About.HTML', PAGE, 0)).toBe('in');
    expect(scope.judge('https://www.shop.example.co.uk/blog/post', PAGE, 0)).toBe('not_included');
    expect(scope.judge(`${PAGE}manual.pdf`, PAGE, 0)).toBe('excluded');
    expect(scope.judge(`${PAGE}private/x`, PAGE, 0)).toBe('excluded');
  });

  it('stops at maxDepth: a page at the deepest level yields no links', () => {
    const scope = new CrawlScope({ follow: 'all', maxDepth: 2 });
    expect(scope.judge(`${PAGE}a`, PAGE, 1)).toBe('in');
    expect(scope.judge(`${PAGE}a`, PAGE, 2)).toBe('too_deep');
  });
});
