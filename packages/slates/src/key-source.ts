import {
  chmodSync,
  existsSync,
  linkSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { InputError } from '@crawlfleet/core';
import { generateKeyEntry, type KeyRing, parseKeyRing } from './key-ring.js';

/*
 * One rule for every process that needs session keys: `CRAWLFLEET_KEYS` when it is set, else the
 * local key file when it exists. Only `crawlfleet crawl` (the one-machine quick path) and
 * `crawlfleet keys generate --save` create that file; everything else refuses to start without
 * one or the other, so a worker never seals sessions under a key nobody else holds.
 */

/** The key ring from `CRAWLFLEET_KEYS`, or undefined when it is unset. */
export function keyRingFromEnv(env: NodeJS.ProcessEnv = process.env): KeyRing | undefined {
  const text = env.CRAWLFLEET_KEYS;
  return text === undefined || text.trim() === '' ? undefined : parseKeyRing(text);
}

/** The local key file: `$XDG_CONFIG_HOME/crawlfleet/keys`, default `~/.config/crawlfleet/keys`. */
export function localKeyFilePath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'crawlfleet', 'keys');
}

export interface LocalKeyRing {
  ring: KeyRing;
  /** The key file used, when CRAWLFLEET_KEYS was unset. */
  file?: string | undefined;
  /** True when the file was created just now. */
  created: boolean;
}

/** `CRAWLFLEET_KEYS` when set, else the local key file when it exists; undefined when neither. */
export function findKeyRing(env: NodeJS.ProcessEnv = process.env): LocalKeyRing | undefined {
  const fromEnv = keyRingFromEnv(env);
  if (fromEnv !== undefined) return { ring: fromEnv, created: false };
  const file = localKeyFilePath(env);
  if (!existsSync(file)) return undefined;
  return { ring: parseKeyRing(readKeyFile(file).join(','), file), file, created: false };
}

/** For processes that must share session state with a fleet: no key, no start (exit 2). */
export function requireKeyRing(env: NodeJS.ProcessEnv = process.env): KeyRing {
  const found = findKeyRing(env);
  if (found === undefined) {
    throw new InputError(
      'keys_missing',
      `no session key: set CRAWLFLEET_KEYS (make one with \`crawlfleet keys generate\`) or keep one in ${localKeyFilePath(env)} (\`crawlfleet keys generate --save\`); every worker and the CLI need the same keys`,
    );
  }
  return found.ring;
}

/** The quick path: like `findKeyRing`, but creates the key file (0600) when neither is there. */
export function localKeyRing(env: NodeJS.ProcessEnv = process.env): LocalKeyRing {
  const found = findKeyRing(env);
  if (found !== undefined) return found;
  const file = localKeyFilePath(env);
  try {
    // Written aside and linked into place: never half a file, and a crawl started at the same
    // moment that made one first wins, this one reads it.
    const next = `${file}.${process.pid}.tmp`;
    writeKeyFile(next, [generateKeyEntry()]);
    try {
      linkSync(next, file);
    } finally {
      rmSync(next, { force: true });
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return { ring: parseKeyRing(readKeyFile(file).join(','), file), file, created: false };
  }
  return { ring: parseKeyRing(readKeyFile(file).join(','), file), file, created: true };
}

/**
 * Puts a new key first in the local key file, creating it (0600) when missing; the keys already
 * there stay, so slates they sealed still open. Returns the file and the new key's id.
 */
export function saveLocalKey(env: NodeJS.ProcessEnv = process.env): { file: string; kid: string; keys: number } {
  const file = localKeyFilePath(env);
  const kept = existsSync(file) ? readKeyFile(file) : [];
  // Refuse a file that does not parse rather than bury it under a new key.
  if (kept.length > 0) parseKeyRing(kept.join(','), file);
  const entry = generateKeyEntry();
  const entries = [entry, ...kept];
  if (!existsSync(file)) writeKeyFile(file, entries);
  else {
    // Written aside and renamed over the old file (an empty one too), so a crash never leaves
    // half a key file.
    const next = `${file}.${process.pid}.tmp`;
    writeKeyFile(next, entries);
    renameSync(next, file);
  }
  return { file, kid: entry.slice(0, entry.indexOf(':')), keys: entries.length };
}

/** The entries of a key file, one a line (or comma-separated); one that others can read is refused. */
function readKeyFile(file: string): string[] {
  if ((statSync(file).mode & 0o077) !== 0) {
    throw new InputError('keys_exposed', `${file} is readable by others: chmod 600 it (or set CRAWLFLEET_KEYS)`);
  }
  return readFileSync(file, 'utf8')
    .split(/[\s,]+/)
    .filter((entry) => entry !== '');
}

/** Creates `file` (never overwrites it) with 0600 permissions, its folder with 0700. */
function writeKeyFile(file: string, entries: readonly string[]): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, `${entries.join('\n')}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
}
