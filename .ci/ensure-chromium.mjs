#!/usr/bin/env node
// `npm test` runs this first (pretest), as `.ci/run` does: the board's browser test drives
// Debian's Chromium through playwright-core, which downloads no browser of its own. On a machine
// where we are root with apt-get, a missing Chromium is installed; anywhere else the run stops
// at once with one line saying exactly what it needs, instead of two browser tests failing late.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const path = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
if (existsSync(path)) process.exit(0);

const canInstall =
  process.env.CRAWLFLEET_NO_APT !== '1' &&
  process.getuid?.() === 0 &&
  spawnSync('sh', ['-c', 'command -v apt-get'], { stdio: 'ignore' }).status === 0;
if (canInstall && path === '/usr/bin/chromium') {
  process.stderr.write("npm test: Chromium is missing; installing Debian's chromium with apt-get\n");
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const update = spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  const install =
    update.status === 0
      ? spawnSync('apt-get', ['install', '-y', '-qq', 'chromium'], { stdio: 'inherit', env })
      : update;
  if (install.status === 0 && existsSync(path)) process.exit(0);
}
process.stderr.write(
  `npm test needs Chromium at ${path} for the board's browser test: install Debian's chromium (apt-get install chromium) or set CHROMIUM_PATH to a Chromium binary\n`,
);
process.exit(1);
