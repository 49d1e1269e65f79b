#!/usr/bin/env node
// Committed so npm can link the command at install time, before `prepare` builds dist/.
await import('../dist/main.js');
