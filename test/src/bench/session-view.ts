import type { KeyLayout } from '@crawlfleet/core';
import { runCli } from '../harness.js';
import type { Bench } from './fleet.js';

/**
 * Names of the cookies a session holds, as `crawlfleet sessions show --json` prints them. Read
 * through the CLI, as an operator would, with the environment the bench's workers get (the
 * private Redis, the run's prefix, the bench config and the test key ring), so the check does not
 * depend on how the session code stores a jar.
 */
export async function sessionCookieNames(bench: Bench, keys: KeyLayout, sessionId: string): Promise<string[]> {
  const shown = await runCli(['sessions', 'show', sessionId, '--tenant', 'default', '--json'], {
    env: {
      REDIS_URL: bench.serverUrl,
      CRAWLFLEET_SESSION_REDIS_URL: undefined,
      CRAWLFLEET_PREFIX: keys.prefix,
      CRAWLFLEET_CONFIG: bench.configPath,
    },
  });
  if (shown.code !== 0)
    throw new Error(`crawlfleet sessions show ${sessionId} exited ${shown.code}: ${shown.stderr.trim().slice(0, 300)}`);
  const view = JSON.parse(shown.stdout) as { cookies?: Array<{ name?: unknown }> };
  if (!Array.isArray(view.cookies)) throw new Error(`crawlfleet sessions show ${sessionId} printed no cookies array`);
  return view.cookies.map((cookie) => String(cookie.name));
}
