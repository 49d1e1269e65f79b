import { z } from 'zod';
import { InputError } from './errors.js';
import { describeZodError, NAME_PATTERN } from './job.js';

/** How a crawl follows the links of its pages, relative to the page they are on. */
export const FOLLOW_STRATEGIES = ['none', 'same-hostname', 'same-domain', 'same-origin', 'all'] as const;

const glob = z.string().min(1).max(2048);

/**
 * A named crawl: what it follows and how far. Stored once in Redis when it starts; every job of
 * the crawl names it, and workers read it from there (so a link is judged by the crawl's scope,
 * whatever worker finds it). Version 1.
 */
export const crawlDefinitionSchema = z.strictObject({
  v: z.literal(1),
  name: z.string().regex(NAME_PATTERN, 'must be 1-64 of A-Z a-z 0-9 . _ -'),
  tenant: z.string().regex(NAME_PATTERN),
  /** The session every job of the crawl runs as, when one was given. */
  sessionId: z.string().regex(NAME_PATTERN).optional(),
  follow: z.enum(FOLLOW_STRATEGIES),
  include: z.array(glob).max(100).default([]),
  exclude: z.array(glob).max(100).default([]),
  /** The deepest page fetched (seeds are depth 0); none: no limit. */
  maxDepth: z.number().int().min(0).max(1000).optional(),
  /** The most pages the crawl admits to its frontier, for the whole fleet; none: no limit. */
  maxPages: z.number().int().min(1).max(100_000_000).optional(),
  createdAt: z.string().datetime(),
});

export type CrawlDefinition = z.infer<typeof crawlDefinitionSchema>;

/** Checks a crawl definition; bad input is one line (`InputError`, exit code 2). */
export function parseCrawlDefinition(value: unknown): CrawlDefinition {
  const parsed = crawlDefinitionSchema.safeParse(value);
  if (!parsed.success) throw new InputError('invalid_crawl', `crawl ${describeZodError(parsed.error)}`);
  return parsed.data;
}

/**
 * A page's links still to be admitted to its crawl: a frontier entry (field `l`) on a fleet of
 * more than one shard, written with the page's result and admitted by a mover on the fleet tag,
 * where the crawl's seen set is. Each link is its idempotency key and its job, JSON.
 */
export interface LinksToAdmit {
  crawl: string;
  /** The crawl's page limit (0: none). */
  maxPages: number;
  links: Array<[key: string, job: string]>;
}
