#!/usr/bin/env node
// Tracing starts before the app's modules load, so everything they do can be traced; without
// OTEL_* settings it starts nothing.
import { startTracing } from '@crawlfleet/tracing';

const stopTracing = await startTracing('crawlfleet');
const { run } = await import('./cli.js');
await run(process.argv);
await stopTracing();
