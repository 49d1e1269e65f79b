import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SCRIPT = fileURLToPath(new URL('../../.ci/ensure-chromium.mjs', import.meta.url));

function ensure(env: Record<string, string>) {
  return spawnSync(process.execPath, [SCRIPT], { env: { ...process.env, ...env }, encoding: 'utf8' });
}

describe("npm test's browser check", () => {
  it('says in one line exactly what it needs when Chromium is missing and cannot be installed', () => {
    const run = ensure({ CHROMIUM_PATH: '/nonexistent/chromium', CRAWLFLEET_NO_APT: '1' });
    expect(run.status).toBe(1);
    expect(run.stderr).toBe(
      "npm test needs Chromium at /nonexistent/chromium for the board's browser test: install Debian's chromium (apt-get install chromium) or set CHROMIUM_PATH to a Chromium binary\n",
    );
  });

  it('passes quietly when the browser is there', () => {
    const run = ensure({ CHROMIUM_PATH: process.execPath });
    expect(run.status).toBe(0);
    expect(run.stderr).toBe('');
  });
});
