#!/usr/bin/env node
// Tracing starts before the app's modules load, so everything they do can be traced; without
// OTEL_* settings it starts nothing.
import { exitAfterOutput, startTracing } from '@crawlfleet/tracing';

const stopTracing = await startTracing({ serviceName: 'crawlfleet-worker' });
const { main } = await import('./worker.js');
await main();
// A collector that is down or hangs can leave the exporter's sockets and retry timers behind;
// they must not keep the worker running once it has drained.
if ((await stopTracing()) === 'unsent') await exitAfterOutput();
