#!/usr/bin/env node
// The entry point only prepares tracing hooks (they must precede every other module), then runs
// the app. See registerTracingHooks.
import { registerTracingHooks } from '@crawlfleet/tracing';

registerTracingHooks();
await import('./cli.js');
