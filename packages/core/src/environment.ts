import { InputError } from './errors.js';
import { isValidPrefix } from './keys.js';
import { isClusterUrl, parseClusterUrl, redactRedisUrl } from './redis.js';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
export const DEFAULT_PREFIX = 'cf';

/** What the environment says about where crawlfleet keeps its state. */
export interface Environment {
  redisUrl: string;
  /** True when `REDIS_URL` was set (so no local fallback is started). */
  redisUrlFromEnv: boolean;
  sessionRedisUrl: string;
  /** True when `CRAWLFLEET_SESSION_REDIS_URL` was set. */
  sessionRedisUrlFromEnv: boolean;
  prefix: string;
}

export function readEnvironment(env: NodeJS.ProcessEnv = process.env): Environment {
  const redisUrl = env.REDIS_URL || DEFAULT_REDIS_URL;
  const prefix = env.CRAWLFLEET_PREFIX || DEFAULT_PREFIX;
  if (!isValidPrefix(prefix)) {
    throw new InputError(
      'invalid_prefix',
      `CRAWLFLEET_PREFIX must be 1-64 of A-Z a-z 0-9 . _ -, got ${JSON.stringify(prefix)}`,
    );
  }
  for (const [name, value] of [
    ['REDIS_URL', redisUrl],
    ['CRAWLFLEET_SESSION_REDIS_URL', env.CRAWLFLEET_SESSION_REDIS_URL],
  ] as const) {
    if (value && !/^rediss?(\+cluster)?:\/\//.test(value)) {
      throw new InputError(
        'invalid_redis_url',
        `${name} must start with redis://, rediss:// or redis+cluster://, got ${JSON.stringify(redactRedisUrl(value))}`,
      );
    }
    if (value && isClusterUrl(value)) {
      try {
        parseClusterUrl(value);
      } catch (error) {
        throw new InputError('invalid_redis_url', `${name}: ${(error as Error).message}`);
      }
    }
  }
  return {
    redisUrl,
    redisUrlFromEnv: Boolean(env.REDIS_URL),
    sessionRedisUrl: env.CRAWLFLEET_SESSION_REDIS_URL || redisUrl,
    sessionRedisUrlFromEnv: Boolean(env.CRAWLFLEET_SESSION_REDIS_URL),
    prefix,
  };
}

/**
 * A whole-number setting from the environment: undefined when unset or empty; anything that is
 * not a whole number of at least `min` is an `invalid_setting` saying what it `must` be.
 */
export function wholeNumberSetting(
  name: string,
  text: string | undefined,
  { min, must }: { min: number; must: string },
): number | undefined {
  if (text === undefined || text === '') return undefined;
  if (!/^\d+$/.test(text) || Number(text) < min)
    throw new InputError('invalid_setting', `${name} must be ${must}, got ${JSON.stringify(text)}`);
  return Number(text);
}

const DURATION_UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Parses `90s`, `30m`, `12h`, `7d`, `2w` into milliseconds; `what` names the flag in errors. */
export function parseDuration(text: string, what = 'duration'): number {
  const match = /^(\d+)(s|m|h|d|w)$/.exec(text.trim());
  if (match === null)
    throw new InputError(
      'invalid_duration',
      `${what} must look like 90s, 30m, 12h, 7d or 2w, got ${JSON.stringify(text)}`,
    );
  return Number(match[1]) * (DURATION_UNITS[match[2] as string] as number);
}
