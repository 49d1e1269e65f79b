#!/usr/bin/env node
// Tracing starts before the app's modules load, so everything they do can be traced; without
// OTEL_* settings it starts nothing.
import { startTracing } from '@crawlfleet/tracing';

const stopTracing = await startTracing('crawlfleet-worker');
const { main } = await import('./worker.js');
await main();
await stopTracing();
