import { createHash, timingSafeEqual } from 'node:crypto';
import { InputError } from '@crawlfleet/core';
import type { NextFunction, Request, Response } from 'express';

/** Who may open the board: HTTP Basic credentials, or a bearer token. */
export type BoardAuth = { kind: 'basic'; user: string; password: string } | { kind: 'bearer'; token: string };

/**
 * From `CRAWLFLEET_BOARD_USER` + `CRAWLFLEET_BOARD_PASSWORD`, or `CRAWLFLEET_BOARD_TOKEN`.
 * Authentication is not optional: with neither, the board refuses to start (exit 2).
 */
export function boardAuthFromEnv(env: NodeJS.ProcessEnv = process.env): BoardAuth {
  const { CRAWLFLEET_BOARD_USER: user, CRAWLFLEET_BOARD_PASSWORD: password, CRAWLFLEET_BOARD_TOKEN: token } = env;
  if (user && password) return { kind: 'basic', user, password };
  if (token) return { kind: 'bearer', token };
  if (user || password)
    throw new InputError(
      'board_auth_missing',
      'set both CRAWLFLEET_BOARD_USER and CRAWLFLEET_BOARD_PASSWORD (or CRAWLFLEET_BOARD_TOKEN)',
    );
  throw new InputError(
    'board_auth_missing',
    'the board needs credentials: set CRAWLFLEET_BOARD_USER and CRAWLFLEET_BOARD_PASSWORD, or CRAWLFLEET_BOARD_TOKEN',
  );
}

/** Equal-length digests compared in constant time, so neither length nor content leaks by timing. */
function same(given: string, expected: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/** `Basic abc=` as its scheme, lower-cased (schemes are case-insensitive, RFC 9110 11.1), and the rest. */
function splitAuthorization(header: string): { scheme: string; credentials: string } {
  const match = /^([^\s]+)\s+(.*)$/s.exec(header.trim());
  return match === null
    ? { scheme: header.trim().toLowerCase(), credentials: '' }
    : { scheme: (match[1] as string).toLowerCase(), credentials: (match[2] as string).trim() };
}

function authorized(auth: BoardAuth, header: string | undefined): boolean {
  if (header === undefined) return false;
  const { scheme, credentials } = splitAuthorization(header);
  if (auth.kind === 'bearer') return scheme === 'bearer' && same(credentials, auth.token);
  if (scheme !== 'basic') return false;
  const decoded = Buffer.from(credentials, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon === -1) return false;
  // Both halves are always compared, so a right user with a wrong password takes as long.
  const userOk = same(decoded.slice(0, colon), auth.user);
  const passwordOk = same(decoded.slice(colon + 1), auth.password);
  return userOk && passwordOk;
}

export interface FailurePolicy {
  /** Failures from one address within the window before answers slow down. Default 5. */
  freeFailures?: number;
  windowMs?: number;
  /** Added per failure past the free ones, capped at `maxDelayMs`. */
  delayPerFailureMs?: number;
  maxDelayMs?: number;
}

/**
 * Guards every request (pages, API, static assets). Wrong or missing credentials get 401; an
 * address that keeps failing gets its answers slowed down, which makes guessing expensive.
 */
export function requireBoardAuth(auth: BoardAuth, policy: FailurePolicy = {}) {
  const freeFailures = policy.freeFailures ?? 5;
  const windowMs = policy.windowMs ?? 60_000;
  const step = policy.delayPerFailureMs ?? 500;
  const maxDelay = policy.maxDelayMs ?? 10_000;
  const failures = new Map<string, { count: number; since: number }>();
  return (req: Request, res: Response, next: NextFunction): void => {
    if (authorized(auth, req.headers.authorization)) {
      next();
      return;
    }
    const address = req.socket.remoteAddress ?? 'unknown';
    const now = Date.now();
    const seen = failures.get(address);
    const record = seen === undefined || now - seen.since > windowMs ? { count: 0, since: now } : seen;
    record.count++;
    failures.set(address, record);
    if (failures.size > 10_000) failures.clear();
    const delay = Math.min(maxDelay, Math.max(0, record.count - freeFailures) * step);
    setTimeout(() => {
      if (auth.kind === 'basic') res.setHeader('WWW-Authenticate', 'Basic realm="crawlfleet board", charset="UTF-8"');
      else res.setHeader('WWW-Authenticate', 'Bearer realm="crawlfleet board"');
      res.status(401).type('text/plain').send('authentication required\n');
    }, delay);
  };
}
