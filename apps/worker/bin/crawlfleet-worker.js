#!/usr/bin/env -S node --max-semi-space-size=8
// Committed so npm can link the command at install time, before `prepare` builds dist/.
await import('../dist/main.js');
