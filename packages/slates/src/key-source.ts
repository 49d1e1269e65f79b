import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { InputError } from '@crawlfleet/core';
import { generateKeyEntry, type KeyRing, parseKeyRing } from './key-ring.js';

/** The key ring from `CRAWLFLEET_KEYS`, or undefined when it is unset. */
export function keyRingFromEnv(env: NodeJS.ProcessEnv = process.env): KeyRing | undefined {
  const text = env.CRAWLFLEET_KEYS;
  return text === undefined || text.trim() === '' ? undefined : parseKeyRing(text);
}

/** For processes that must share session state with a fleet: no key, no start (exit 2). */
export function requireKeyRing(env: NodeJS.ProcessEnv = process.env): KeyRing {
  const ring = keyRingFromEnv(env);
  if (ring === undefined) {
    throw new InputError(
      'keys_missing',
      'CRAWLFLEET_KEYS is not set: session state is encrypted with it; make one with `crawlfleet keys generate` and give every worker and the CLI the same value',
    );
  }
  return ring;
}

/** Where the one-machine quick path keeps its key when CRAWLFLEET_KEYS is unset. */
export function localKeyFilePath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(base, 'crawlfleet', 'keys');
}

export interface LocalKeyRing {
  ring: KeyRing;
  /** The key file used, when CRAWLFLEET_KEYS was unset. */
  file?: string | undefined;
  /** True when the file was created just now. */
  created: boolean;
}

/**
 * `CRAWLFLEET_KEYS` when set; else the local key file, created with 0600 permissions on first
 * use. A key file that others can read is refused rather than used.
 */
export function localKeyRing(env: NodeJS.ProcessEnv = process.env): LocalKeyRing {
  const fromEnv = keyRingFromEnv(env);
  if (fromEnv !== undefined) return { ring: fromEnv, created: false };
  const file = localKeyFilePath(env);
  if (existsSync(file)) {
    if ((statSync(file).mode & 0o077) !== 0) {
      throw new InputError('keys_exposed', `${file} is readable by others: chmod 600 it (or set CRAWLFLEET_KEYS)`);
    }
    return { ring: parseKeyRing(readFileSync(file, 'utf8'), file), file, created: false };
  }
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, `${generateKeyEntry()}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
  return { ring: parseKeyRing(readFileSync(file, 'utf8'), file), file, created: true };
}
