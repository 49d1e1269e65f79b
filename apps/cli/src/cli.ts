import { exitCodeOf, oneLine } from '@crawlfleet/core';
import { startTracing } from '@crawlfleet/tracing';
import { CommanderError } from 'commander';
import { buildProgram } from './program.js';

const stopTracing = await startTracing('crawlfleet');
try {
  await buildProgram().parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // Commander already printed its message; help and --version are not errors.
    process.exitCode = error.exitCode === 0 ? 0 : 2;
  } else {
    process.stderr.write(`crawlfleet: ${oneLine(error)}\n`);
    process.exitCode = exitCodeOf(error);
  }
}
await stopTracing();
