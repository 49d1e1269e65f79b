import { generateKeyEntry, requireKeyRing, SlateStore } from '@crawlfleet/slates';
import type { Command } from 'commander';
import { type GlobalOptions, openSessionContext } from '../context.js';
import { printJson, say } from '../output.js';

export function registerKeys(program: Command): void {
  const keys = program.command('keys').description('session encryption keys (CRAWLFLEET_KEYS)');

  keys
    .command('generate')
    .description('print a new kid:base64key entry for CRAWLFLEET_KEYS')
    .addHelpText(
      'after',
      `
CRAWLFLEET_KEYS is a comma-separated list; the first key encrypts, every key decrypts. To rotate:
  1. put a new entry first on every worker and CLI:  CRAWLFLEET_KEYS="$(crawlfleet keys generate),$CRAWLFLEET_KEYS"
  2. re-encrypt stored slates under it, while workers run:  crawlfleet keys rotate
  3. later, drop the old entry.`,
    )
    .action(() => {
      process.stdout.write(`${generateKeyEntry()}\n`);
    });

  keys
    .command('rotate')
    .description('re-encrypt every session slate under the newest key (safe while workers run)')
    .option('--json', 'print {"resealed","current","unreadable","moved"}')
    .action(async (options: { json?: boolean }, command: Command) => {
      const ring = requireKeyRing();
      const context = await openSessionContext(command.optsWithGlobals<GlobalOptions>());
      try {
        const store = new SlateStore(context.redis, context.keys, ring);
        const tally = await store.rotate();
        if (options.json) printJson(tally);
        else {
          say(
            `re-encrypted ${tally.resealed} slates under ${ring.current.kid}; ${tally.current} already were; ${tally.moved} changed meanwhile (already re-encrypted by a worker or picked up next run); ${tally.unreadable} unreadable with these keys`,
          );
        }
        if (tally.unreadable > 0) process.exitCode = 1;
      } finally {
        await context.close();
      }
    });
}
