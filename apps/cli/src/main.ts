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
// A collector that is down or hangs can leave the exporter's sockets and retry timers behind;
// they must not keep the command running once its work is done.
if ((await stopTracing()) === 'unsent') await exitAfterOutput();
