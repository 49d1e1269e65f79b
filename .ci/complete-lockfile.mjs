#!/usr/bin/env node
// The registry this project's machines reach serves only their own platform's prebuilt binaries
// (e.g. @biomejs/cli-linux-x64, not cli-darwin-arm64), so npm cannot record the other platforms'
// optional packages in package-lock.json, and `npm ci` then refuses the lock as out of sync.
// This adds an entry for each missing optional dependency, tagged with the os and cpu its name
// gives, so `npm ci` skips it here and a machine with the full registry installs it as usual.
// Runs as the root `postinstall`; it changes nothing when the lock is already complete.
import { readFileSync, writeFileSync } from 'node:fs';

const path = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(path, 'utf8'));
const OSES = [
  'android',
  'darwin',
  'freebsd',
  'openbsd',
  'netbsd',
  'sunos',
  'aix',
  'openharmony',
  'cygwin',
  'linux',
  'win32',
  'windows',
];
const CPUS = ['arm64', 'x64', 'ia32', 'arm', 'ppc64', 'riscv64', 's390x', 'loong64', 'mips64el', 'wasm32', '64'];

function platformOf(name) {
  const base = name.split('/').pop();
  const parts = base.split('-');
  const os = OSES.find((o) => parts.includes(o));
  const cpu = CPUS.find((c) => parts.includes(c));
  return {
    ...(cpu ? { cpu: [cpu === '64' ? 'x64' : cpu] } : {}),
    ...(os ? { os: [os === 'windows' ? 'win32' : os] } : {}),
  };
}

let added = 0;
for (const [key, entry] of Object.entries(lock.packages)) {
  for (const [dep, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const nested = `${key === '' ? '' : `${key}/`}node_modules/${dep}`;
    if (lock.packages[nested] || lock.packages[`node_modules/${dep}`]) continue;
    lock.packages[`node_modules/${dep}`] = {
      version,
      ...(entry.dev ? { dev: true } : {}),
      optional: true,
      ...platformOf(dep),
    };
    added++;
  }
}
if (added > 0) {
  writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`);
  process.stdout.write(`complete-lockfile: recorded ${added} optional packages of other platforms\n`);
}
