#!/usr/bin/env node
// Tracing starts before the app's modules load, so everything they do can be traced; without
// OTEL_* settings it starts nothing.
import { exitAfterOutput, startTracing } from '@crawlfleet/tracing';

// `crawlfleet ... | head` closes the pipe early: that is the reader's choice, not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

const stopTracing = await startTracing({ serviceName: 'crawlfleet' });
const { run } = await import('./cli.js');
await run(process.argv);
await stopTracing();
// A command is done when run() returns: a worker's job stuck past its grace period, or an
// exporter's retries, must not keep it running.
await exitAfterOutput();
