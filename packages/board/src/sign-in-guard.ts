import { isIPv4, isIPv6 } from 'node:net';
import type { Logger } from '@crawlfleet/log';
import type { NextFunction, Request, Response } from 'express';
import { type BoardAuth, type Credentials, credentialsMatch, readCredentials } from './board-auth.js';
import { type FailurePolicy, resolveFailurePolicy } from './failure-policy.js';
import { type Refusal, SignInLockout } from './sign-in-lockout.js';

export interface SignInGuardOptions {
  auth: BoardAuth;
  /** Defaults: see `FailurePolicy`. */
  failurePolicy?: FailurePolicy | undefined;
  /** Where lock-outs are logged (warn). */
  logger: Logger;
}

/** How much of a user name a log line keeps. */
const LOGGED_NAME = 64;

/**
 * Guards every request (pages, API, static assets). Missing or wrong credentials get 401, and an
 * address that keeps failing gets its 401s slowed down. Too many failures from one address, or
 * for one user name, lock it out: 429 with Retry-After for every request, right password or
 * not, until the lock-out ends, each logged as a warning (address and user, never a password).
 */
export function requireBoardAuth(options: SignInGuardOptions) {
  const { auth, logger } = options;
  const lockout = new SignInLockout(resolveFailurePolicy(options.failurePolicy));
  return (req: Request, res: Response, next: NextFunction): void => {
    const address = req.socket.remoteAddress ?? 'unknown';
    const header = req.headers.authorization;
    if (header === undefined) {
      // Asking without credentials guesses nothing: it is not counted, only refused while locked out.
      const refusal = lockout.check(address);
      if (refusal === undefined) challenge(auth, res);
      else refuse(logger, res, refusal, address, undefined);
      return;
    }
    const credentials = readCredentials(header);
    const user = accountOf(auth, credentials);
    const admission = lockout.admit(address, user);
    if (admission.verdict === 'refuse') {
      refuse(logger, res, admission, address, user);
      return;
    }
    const succeeded = credentialsMatch(auth, credentials);
    const settlement = lockout.settle(admission, succeeded);
    if (succeeded) {
      next();
      return;
    }
    for (const started of settlement.lockouts)
      logger.warn(
        {
          address: networkOf(address),
          user: user?.slice(0, LOGGED_NAME),
          scope: started.scope,
          failures: started.failures,
          retryAfterS: seconds(started.retryAfterMs),
        },
        'board sign-in locked out',
      );
    if (settlement.delayMs === 0) challenge(auth, res);
    else setTimeout(() => challenge(auth, res), settlement.delayMs);
  };
}

/**
 * Whom a sign-in claims to be, for the per-user limit: the Basic user name, or, on a bearer board,
 * its one token, whatever was sent.
 */
function accountOf(auth: BoardAuth, credentials: Credentials): string | undefined {
  if (auth.kind === 'bearer') return 'bearer token';
  return credentials.scheme === 'basic' ? credentials.user : undefined;
}

function challenge(auth: BoardAuth, res: Response): void {
  if (auth.kind === 'basic') res.setHeader('WWW-Authenticate', 'Basic realm="crawlfleet board", charset="UTF-8"');
  else res.setHeader('WWW-Authenticate', 'Bearer realm="crawlfleet board"');
  res.status(401).type('text/plain').send('authentication required\n');
}

function refuse(logger: Logger, res: Response, refusal: Refusal, address: string, user: string | undefined): void {
  const retryAfterS = seconds(refusal.retryAfterMs);
  logger.warn(
    { address: networkOf(address), user: user?.slice(0, LOGGED_NAME), scope: refusal.scope, retryAfterS },
    'board sign-in refused while locked out',
  );
  res.setHeader('Retry-After', String(retryAfterS));
  res.status(429).type('text/plain').send('too many failed sign-ins; try again later\n');
}

function seconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1_000));
}

/**
 * The client's network (`203.0.113.*`, `2001:db8:1:2:*`), not its address: log lines are scrubbed
 * of IP addresses, and the network is what an operator blocks.
 */
function networkOf(address: string): string {
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (isIPv4(v4)) return `${v4.slice(0, v4.lastIndexOf('.'))}.*`;
  if (!isIPv6(address)) return 'unknown';
  const [head = '', tail] = address.split('%')[0]?.split('::') ?? [];
  const groups = head === '' ? [] : head.split(':');
  if (tail !== undefined) {
    const tailGroups = tail === '' ? [] : tail.split(':');
    // An embedded IPv4 address (`64:ff9b::192.0.2.1`) stands for two groups.
    const tailWidth = tailGroups.reduce((width, group) => width + (group.includes('.') ? 2 : 1), 0);
    groups.push(...Array<string>(8 - groups.length - tailWidth).fill('0'), ...tailGroups);
  }
  return `${groups.slice(0, 4).join(':')}:*`;
}
