import { createHash, timingSafeEqual } from 'node:crypto';
import { InputError } from '@crawlfleet/core';

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

/** What an Authorization header offers. */
export type Credentials =
  | { scheme: 'basic'; user: string; password: string }
  | { scheme: 'bearer'; token: string }
  /** Another scheme, or Basic credentials without a colon. */
  | { scheme: 'other' };

/** Reads an Authorization header; its scheme is case-insensitive (RFC 7617, RFC 9110 11.1). */
export function readCredentials(header: string): Credentials {
  const match = /^(\S+)\s+(.*)$/s.exec(header.trim());
  const scheme = match?.[1]?.toLowerCase();
  const rest = match?.[2]?.trim() ?? '';
  if (scheme === 'bearer') return { scheme, token: rest };
  if (scheme !== 'basic') return { scheme: 'other' };
  const decoded = Buffer.from(rest, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon === -1) return { scheme: 'other' };
  return { scheme, user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** Whether the credentials are the board's, compared in constant time. */
export function credentialsMatch(auth: BoardAuth, credentials: Credentials): boolean {
  if (auth.kind === 'bearer') return credentials.scheme === 'bearer' && same(credentials.token, auth.token);
  if (credentials.scheme !== 'basic') return false;
  // Both halves are always compared, so a right user with a wrong password takes as long.
  const userOk = same(credentials.user, auth.user);
  const passwordOk = same(credentials.password, auth.password);
  return userOk && passwordOk;
}
