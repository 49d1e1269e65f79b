#!/usr/bin/env node
// Tracing starts before the app's modules load, so everything they do can be traced; without
// OTEL_* settings it starts nothing.
import { exitAfterOutput, startTracing } from '@crawlfleet/tracing';

const stopTracing = await startTracing({ serviceName: 'crawlfleet-worker' });
const { main } = await import('./worker.js');
await main();
await stopTracing();
// Drained means done: a job still stuck past the grace period (its socket, its timers), or an
// exporter's retries, must not keep the process running after it said "worker stopped". Another
// worker takes the job up once its lock lapses.
await exitAfterOutput();
