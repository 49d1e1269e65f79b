import { createWriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';
import { InputError } from '@crawlfleet/core';
import { ResultsStore } from '@crawlfleet/results';
import type { Command } from 'commander';
import { type CommandContext, type GlobalOptions, openContext } from '../context.js';
import { plural, say, writeLine } from '../output.js';

/** Streams every stored result as JSON lines to `out` (a file path) or stdout. */
async function exportResults(context: CommandContext, out?: string): Promise<number> {
  const store = new ResultsStore(context.redis, context.keys, context.config.retention);
  const stream = out === undefined ? process.stdout : createWriteStream(out, { flags: 'w' });
  if (out !== undefined) {
    await new Promise<void>((resolve, reject) => {
      stream.once('open', () => resolve());
      stream.once('error', (error) => reject(new InputError('invalid_out', `--out ${out}: ${error.message}`)));
    });
  }
  let count = 0;
  for await (const { result } of store.entries()) {
    await writeLine(stream, JSON.stringify(result));
    count++;
  }
  if (out !== undefined) {
    stream.end();
    await finished(stream);
  }
  return count;
}

export function registerResults(program: Command): void {
  const results = program.command('results').description('read stored results');
  results
    .command('export')
    .description('stream every stored result as JSON lines (url, finalUrl, status, headers, body, bodyBytes, ...)')
    .option('--format <format>', 'output format (jsonl)', 'jsonl')
    .option('-o, --out <file>', 'write to a file instead of stdout')
    .action(async (options: { format: string; out?: string }, command: Command) => {
      if (options.format !== 'jsonl')
        throw new InputError('invalid_format', `--format must be jsonl, got ${JSON.stringify(options.format)}`);
      const context = await openContext(command.optsWithGlobals<GlobalOptions>());
      try {
        const count = await exportResults(context, options.out);
        if (options.out !== undefined) say(`exported ${plural(count, 'result')} to ${options.out}`);
      } finally {
        await context.close();
      }
    });
}
