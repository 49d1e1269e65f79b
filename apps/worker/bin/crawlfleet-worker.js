#!/usr/bin/env -S node --max-old-space-size=1536 --max-semi-space-size=32 --heap-growing-percent=50
// Committed so npm can link the command at install time, before `prepare` builds dist/.
await import('../dist/main.js');
