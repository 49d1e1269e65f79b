import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { CLI_PATH, childEnv } from './harness.js';

/** A `crawlfleet worker` running as its own process, as it would on another machine. */
export interface WorkerProcess {
  readonly child: ChildProcess;
  /** Everything it printed (JSON log lines and stderr). */
  output(): string;
  /** Sends a signal and resolves with the exit code (or null when killed by a signal). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
}

export function startWorkerProcess(env: Record<string, string>, args: string[] = []): WorkerProcess {
  const child = spawn(process.execPath, [CLI_PATH, 'worker', ...args], {
    env: childEnv({ CRAWLFLEET_LOG_LEVEL: 'info', ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    output += chunk;
  });
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return {
    child,
    output: () => output,
    async stop(signal = 'SIGTERM', timeoutMs = 20_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
