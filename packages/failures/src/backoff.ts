export interface BackoffOptions {
  /** The delay cap of the first retry; doubles each attempt. */
  baseMs: number;
  /** No computed delay exceeds this (Retry-After may). */
  maxMs: number;
}

/**
 * "Full jitter" (AWS Architecture Blog, 2015): a uniform random delay between 0 and the capped
 * exponential bound, which spreads retries of many workers instead of synchronising them.
 * `attempt` is 1 for the first retry.
 */
export function fullJitterDelay(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  const bound = Math.min(options.maxMs, options.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random() * bound);
}

/** The delay before the next attempt: full jitter, but never sooner than the server asked. */
export function retryDelay(
  attempt: number,
  options: BackoffOptions,
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const jitter = fullJitterDelay(attempt, options, random);
  return retryAfterMs === undefined ? jitter : Math.max(jitter, Math.ceil(retryAfterMs));
}
