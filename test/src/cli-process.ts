import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { CLI_PATH, childEnv } from './harness.js';

/** A `crawlfleet` command running as its own process, for tests that signal it while it runs. */
export interface CliProcess {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or null when a signal killed it) once the process has exited. */
  readonly exited: Promise<number | null>;
  /** Kills the process (SIGKILL) if it is still running: for `afterEach`. */
  kill(): void;
}

export function startCliProcess(args: string[], env: Record<string, string | undefined> = {}): CliProcess {
  const child = spawn(process.execPath, [CLI_PATH, ...args], { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
