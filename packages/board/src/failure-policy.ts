import { InputError, parseDuration, wholeNumberSetting } from '@crawlfleet/core';
import { z } from 'zod';

/** What failed sign-ins cost. Every field is optional; the defaults are in `failurePolicySchema`. */
export interface FailurePolicy {
  /** Failed sign-ins one address may make within `windowMs`; then it is locked out. Default 10. */
  maxFailuresPerAddress?: number;
  /**
   * Failed sign-ins for one user name, from any address, within `windowMs`; then the name is
   * locked out. A bearer board counts every failure against its one token. Default 20.
   */
  maxFailuresPerUser?: number;
  /** The window failures are counted in, and how long a lock-out lasts. Default 15 minutes. */
  windowMs?: number;
  /** Failures from one address before its 401s slow down. Default 5. */
  freeFailures?: number;
  /** Added to a 401 per failure past the free ones, capped at `maxDelayMs`. Default 500. */
  delayPerFailureMs?: number;
  /** Default 10 000. */
  maxDelayMs?: number;
  /** Addresses, and user names, remembered at once; the least recently seen are forgotten first. Default 10 000. */
  maxTracked?: number;
}

const positive = (fallback: number) => z.number().int().min(1).default(fallback);
const nonNegative = (fallback: number) => z.number().int().min(0).default(fallback);

export const failurePolicySchema = z
  .object({
    maxFailuresPerAddress: positive(10),
    maxFailuresPerUser: positive(20),
    windowMs: positive(15 * 60_000),
    freeFailures: nonNegative(5),
    delayPerFailureMs: nonNegative(500),
    maxDelayMs: nonNegative(10_000),
    maxTracked: positive(10_000),
  })
  .strict();

export type ResolvedFailurePolicy = z.infer<typeof failurePolicySchema>;

/** The policy with its defaults filled in; a wrong field is an `invalid_setting` naming it. */
export function resolveFailurePolicy(policy: FailurePolicy = {}): ResolvedFailurePolicy {
  const parsed = failurePolicySchema.safeParse(policy);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = ['failurePolicy', ...(issue?.path ?? []).map(String)].join('.');
  throw new InputError('invalid_setting', `${field}: ${issue?.message ?? 'invalid value'}`);
}

function wholeNumberFrom1(name: string, text: string): number | undefined {
  return wholeNumberSetting(name, text, { min: 1, must: 'a whole number from 1' });
}

/**
 * The lock-out limits the environment sets: `CRAWLFLEET_BOARD_MAX_FAILURES_PER_ADDRESS`,
 * `CRAWLFLEET_BOARD_MAX_FAILURES_PER_USER`, `CRAWLFLEET_BOARD_LOCKOUT_WINDOW` (`15m`). Unset ones
 * keep their defaults.
 */
export function failurePolicyFromEnv(env: NodeJS.ProcessEnv = process.env): FailurePolicy {
  const {
    CRAWLFLEET_BOARD_MAX_FAILURES_PER_ADDRESS: perAddress,
    CRAWLFLEET_BOARD_MAX_FAILURES_PER_USER: perUser,
    CRAWLFLEET_BOARD_LOCKOUT_WINDOW: window,
  } = env;
  return {
    ...(perAddress
      ? { maxFailuresPerAddress: wholeNumberFrom1('CRAWLFLEET_BOARD_MAX_FAILURES_PER_ADDRESS', perAddress) }
      : {}),
    ...(perUser ? { maxFailuresPerUser: wholeNumberFrom1('CRAWLFLEET_BOARD_MAX_FAILURES_PER_USER', perUser) } : {}),
    ...(window ? { windowMs: lockoutWindow(window) } : {}),
  };
}

function lockoutWindow(text: string): number {
  const windowMs = parseDuration(text, 'CRAWLFLEET_BOARD_LOCKOUT_WINDOW');
  if (windowMs === 0) throw new InputError('invalid_setting', 'CRAWLFLEET_BOARD_LOCKOUT_WINDOW must be longer than 0s');
  return windowMs;
}
