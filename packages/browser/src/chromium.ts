import { accessSync, constants, statSync } from 'node:fs';
import type { Browser } from 'playwright-core';

/** Where Chromium is looked for when `CRAWLFLEET_CHROMIUM` does not say. */
export const DEFAULT_CHROMIUM = '/usr/bin/chromium';

/**
 * Flags for a headless Chromium in a fleet: no background traffic of its own (updates, sync,
 * Google's hosts: on a closed network each fails, and none is the crawl's), no GPU, no first-run
 * work, and no sandbox when running as root (containers), where Chromium refuses to start with one.
 */
export const CHROMIUM_ARGS: readonly string[] = [
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-default-apps',
  '--disable-domain-reliability',
  '--disable-breakpad',
  '--no-first-run',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-quic',
  '--metrics-recording-only',
];

/** Thrown when no usable Chromium is there: the one line says what to do. */
export class BrowserUnavailableError extends Error {
  override readonly name = 'BrowserUnavailableError';
  readonly code = 'ERR_BROWSER_UNAVAILABLE';
  /** A worker asked for browsers it cannot have: bad usage of this machine, exit code 2. */
  readonly exitCode = 2;
}

/** The Chromium binary this process uses: `CRAWLFLEET_CHROMIUM`, else `/usr/bin/chromium`. */
export function chromiumPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.CRAWLFLEET_CHROMIUM?.trim() || DEFAULT_CHROMIUM;
}

/** Why a path is not a Chromium this process can run, or undefined when it looks like one. */
function missing(path: string): string | undefined {
  try {
    if (!statSync(path).isFile()) return `${path} is not a file`;
    accessSync(path, constants.X_OK);
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `${path} does not exist` : `${path} cannot be run (${code ?? 'unknown error'})`;
  }
}

/**
 * Starts the system's Chromium headless through playwright-core (which downloads no browser).
 * A missing or broken binary is a `BrowserUnavailableError` naming the fix.
 */
export async function launchChromium(path: string = chromiumPath()): Promise<Browser> {
  const why = missing(path);
  if (why !== undefined)
    throw new BrowserUnavailableError(
      `no usable Chromium: ${why}; install Debian's chromium (apt-get install chromium) or set CRAWLFLEET_CHROMIUM to a Chromium binary`,
    );
  const { chromium } = await import('playwright-core');
  try {
    return await chromium.launch({
      executablePath: path,
      headless: true,
      args: [...CHROMIUM_ARGS],
      chromiumSandbox: process.getuid?.() !== 0,
      // The worker handles its own signals and closes the browser as it drains.
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
    });
  } catch (error) {
    const first = ((error as Error).message ?? String(error)).split('\n')[0];
    throw new BrowserUnavailableError(`Chromium at ${path} does not start: ${first}`);
  }
}
