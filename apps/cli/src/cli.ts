import { exitCodeOf, oneLine } from '@crawlfleet/core';
import { CommanderError } from 'commander';
import { buildProgram } from './program.js';

/** Runs the command line; sets process.exitCode. */
export async function run(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander already printed its message; help and --version are not errors.
      process.exitCode = error.exitCode === 0 ? 0 : 2;
    } else {
      process.stderr.write(`crawlfleet: ${oneLine(error)}\n`);
      process.exitCode = exitCodeOf(error);
    }
  }
}
