import { randomUUID } from 'node:crypto';
import type { KeyLayout, RedisClient } from '@crawlfleet/core';
import robotsParserModule from 'robots-parser';

/** The part of robots-parser we use. */
interface Robots {
  isAllowed(url: string, userAgent?: string): boolean | undefined;
  getCrawlDelay(userAgent?: string): number | undefined;
}

// robots-parser is CommonJS: its default import is the parser function at run time, but its
// declaration file types it as a namespace under NodeNext resolution.
const robotsParser = robotsParserModule as unknown as (url: string, body: string) => Robots;

/**
 * What fetching an origin's robots.txt gave: an answer, a passing failure (the job waits), or
 * `unusable` when the job's own fetch would fail the same way for good (refused address, DNS):
 * then there is no verdict, nothing is cached, and the page fetch reports the real reason.
 */
export type RobotsFetch = { status: number; body: string } | { error: Error } | { unusable: Error };

export interface RobotsVerdict {
  allowed: boolean;
  /** The Crawl-delay for our user agent, in ms, when the file sets one. */
  crawlDelayMs?: number | undefined;
}

/** robots.txt could not be read (5xx, network): the job is retried later rather than guessed. */
export class RobotsUnavailableError extends Error {
  override readonly name = 'RobotsUnavailableError';
  readonly code = 'ERR_ROBOTS_UNAVAILABLE';
}

/** Thrown where a URL may not be fetched (a redirect hop): classified `robots_disallowed`. */
export class RobotsDisallowedError extends Error {
  override readonly name = 'RobotsDisallowedError';
  readonly code = 'ERR_ROBOTS_DISALLOWED';
}

export interface RobotsCacheOptions {
  /** How long a fetched robots.txt is trusted, fleet-wide. Default 1 day. */
  ttlMs?: number;
  /** How long a worker keeps its own parsed copy before asking Redis again. Default 60 s. */
  localTtlMs?: number;
  /** How long one worker may take to fetch a robots.txt for the fleet. Default 30 s. */
  leaseMs?: number;
}

interface Cached {
  robots: Robots | undefined;
  until: number;
}

/**
 * robots.txt, fetched once per origin for the whole fleet and cached in Redis with a TTL; each
 * worker also keeps a parsed copy for a minute, so the hot path costs no round trip. One worker
 * fetches (a short lease) while the others wait for the cached copy. A 4xx means no rules
 * (RFC 9309); a 5xx or a network failure makes the job wait for another try.
 */
export class RobotsCache {
  private readonly local = new Map<string, Cached>();
  private readonly inFlight = new Map<string, Promise<Robots | undefined | typeof UNUSABLE>>();
  private readonly ttlMs: number;
  private readonly localTtlMs: number;
  private readonly leaseMs: number;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: KeyLayout,
    options: RobotsCacheOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? 24 * 3600 * 1000;
    this.localTtlMs = options.localTtlMs ?? 60_000;
    this.leaseMs = options.leaseMs ?? 30_000;
  }

  /** Whether `url` may be fetched by `userAgent`, fetching the origin's robots.txt if needed. */
  async check(
    url: string,
    userAgent: string,
    fetchRobots: (robotsUrl: string) => Promise<RobotsFetch>,
  ): Promise<RobotsVerdict> {
    const origin = new URL(url).origin;
    let unusable = false;
    const robots = await this.robotsFor(origin, async (robotsUrl) => {
      const fetched = await fetchRobots(robotsUrl);
      if ('unusable' in fetched) unusable = true;
      return fetched;
    });
    if (unusable) return { allowed: true };
    if (robots === undefined) return { allowed: true };
    const agent = userAgent.split('/')[0] ?? userAgent;
    const delay = robots.getCrawlDelay(agent);
    return {
      allowed: robots.isAllowed(url, agent) !== false,
      crawlDelayMs: delay === undefined ? undefined : delay * 1000,
    };
  }

  private async robotsFor(
    origin: string,
    fetchRobots: (robotsUrl: string) => Promise<RobotsFetch>,
  ): Promise<Robots | undefined> {
    const cached = this.local.get(origin);
    if (cached !== undefined && cached.until > Date.now()) return cached.robots;
    let pending: Promise<Robots | undefined | typeof UNUSABLE> | undefined = this.inFlight.get(origin);
    if (pending === undefined) {
      pending = this.load(origin, fetchRobots).finally(() => this.inFlight.delete(origin));
      this.inFlight.set(origin, pending);
    }
    const robots = await pending;
    if (robots === UNUSABLE) return undefined;
    if (this.local.size > 10_000) this.local.clear();
    this.local.set(origin, { robots, until: Date.now() + this.localTtlMs });
    return robots;
  }

  /** From Redis; else fetched by whoever holds the lease, while the others poll Redis. */
  private async load(
    origin: string,
    fetchRobots: (robotsUrl: string) => Promise<RobotsFetch>,
  ): Promise<Robots | undefined | typeof UNUSABLE> {
    const key = this.keys.robots(origin);
    const deadline = Date.now() + this.leaseMs * 2;
    const token = randomUUID();
    for (;;) {
      const stored = await this.redis.get(key);
      if (stored !== null) return parse(origin, stored);
      if ((await this.redis.set(`${key}:lease`, token, 'PX', this.leaseMs, 'NX')) === 'OK') {
        try {
          // Whoever held the lease before may have stored it between our read and our lease.
          const storedMeanwhile = await this.redis.get(key);
          if (storedMeanwhile !== null) return parse(origin, storedMeanwhile);
          const fetched = await fetchRobots(`${origin}/robots.txt`);
          if ('unusable' in fetched) return UNUSABLE;
          if ('error' in fetched || fetched.status >= 500) {
            const why = 'error' in fetched ? fetched.error.message : `HTTP ${fetched.status}`;
            throw new RobotsUnavailableError(`robots.txt of ${origin} is unavailable (${why})`);
          }
          // A 4xx means there are no rules; an empty string stores that.
          const body = fetched.status >= 400 ? '' : fetched.body;
          await this.redis.set(key, body, 'PX', this.ttlMs);
          return parse(origin, body);
        } finally {
          await this.redis.del(`${key}:lease`);
        }
      }
      if (Date.now() > deadline)
        throw new RobotsUnavailableError(`gave up waiting for another worker to fetch robots.txt of ${origin}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** No verdict could be had; nothing is cached. */
const UNUSABLE: unique symbol = Symbol('unusable');

function parse(origin: string, body: string): Robots | undefined {
  return body.trim() === '' ? undefined : robotsParser(`${origin}/robots.txt`, body);
}
