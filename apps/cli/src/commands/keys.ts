import { generateKeyEntry, keyRingFromEnv, requireKeyRing, SessionAdmin, saveLocalKey } from '@crawlfleet/slates';
import type { Command } from 'commander';
import { type GlobalOptions, openSessionContext } from '../context.js';
import { printJson, say } from '../output.js';

export function registerKeys(program: Command): void {
  const keys = program
    .command('keys')
    .description('session encryption keys (CRAWLFLEET_KEYS, else the local key file)')
    .addHelpText(
      'after',
      `
Every command that needs keys (crawl, worker, sessions, keys rotate) uses CRAWLFLEET_KEYS when it is
set, else the local key file ($XDG_CONFIG_HOME/crawlfleet/keys, default ~/.config/crawlfleet/keys)
when it exists. Only crawl and keys generate --save create that file; worker and sessions without
either exit 2. A fleet on several machines sets the same CRAWLFLEET_KEYS everywhere.`,
    );

  keys
    .command('generate')
    .description('print a new kid:base64key entry for CRAWLFLEET_KEYS, or --save it in the local key file')
    .option('--save', 'put the new key first in the local key file (created 0600), keeping the keys already there')
    .addHelpText(
      'after',
      `
CRAWLFLEET_KEYS is a comma-separated list; the first key encrypts, every key decrypts. To rotate:
  1. put a new entry first on every worker and CLI:  CRAWLFLEET_KEYS="$(crawlfleet keys generate),$CRAWLFLEET_KEYS"
     (on one machine with the key file: crawlfleet keys generate --save)
  2. re-encrypt stored slates under it, while workers run:  crawlfleet keys rotate
  3. later, drop the old entry.`,
    )
    .action((options: { save?: boolean }) => {
      if (!options.save) {
        process.stdout.write(`${generateKeyEntry()}\n`);
        return;
      }
      const saved = saveLocalKey();
      say(
        `saved a new session key ${saved.kid} first in ${saved.file} (${saved.keys === 1 ? 'its only key' : `${saved.keys - 1} older kept`})${keyRingFromEnv() === undefined ? '' : '; CRAWLFLEET_KEYS is set, so commands use it instead of this file'}`,
      );
    });

  keys
    .command('rotate')
    .description('re-encrypt every session slate under the newest key (safe while workers run)')
    .option('--json', 'print {"resealed","current","unreadable","moved"}')
    .action(async (options: { json?: boolean }, command: Command) => {
      const ring = requireKeyRing();
      const context = await openSessionContext(command.optsWithGlobals<GlobalOptions>());
      try {
        const tally = await new SessionAdmin(context.redis, context.keys).rotate(ring);
        if (options.json) printJson(tally);
        else {
          say(
            `re-encrypted ${tally.resealed} slates and cookies under ${ring.current.kid}; ${tally.current} already were; ${tally.moved} changed meanwhile (already re-encrypted by a worker or picked up next run); ${tally.unreadable} unreadable with these keys`,
          );
        }
        if (tally.unreadable > 0) process.exitCode = 1;
      } finally {
        await context.close();
      }
    });
}
