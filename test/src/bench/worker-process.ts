import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { childEnv } from '../harness.js';

/** A benchmark side's process (a worker, a crawler) and what it printed last. */
export interface WorkerChild {
  readonly pid: number;
  exitCode(): number | null | undefined;
  tail(): string;
  /** Resolves once the process printed `marker` (its ready line); fails if it exits first. */
  printed(marker: string, timeoutMs: number): Promise<void>;
  /** Resolves with the exit code once the process ended by itself; fails after `timeoutMs`. */
  ended(timeoutMs: number): Promise<number | null>;
  stop(): Promise<void>;
}

/** Starts `node <args>` with the test environment plus `env` (undefined unsets). */
export function startChild(args: string[], env: Record<string, string | undefined>): WorkerChild {
  const child = spawn(process.execPath, args, { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  const seen = new Set<string>();
  const waiting = new Map<string, () => void>();
  // The pipes are drained as they fill, as a log shipper would; only the end is kept for errors.
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-4_000);
    for (const [marker, resolve] of waiting) {
      if (!tail.includes(marker)) continue;
      seen.add(marker);
      waiting.delete(marker);
      resolve();
    }
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = once(child, 'exit');
  if (child.pid === undefined) throw new Error(`could not start ${args.join(' ')}`);
  const pid = child.pid;
  return {
    pid,
    exitCode: () => (child.exitCode === null && child.signalCode === null ? undefined : child.exitCode),
    tail: () => tail,
    printed(marker, timeoutMs) {
      if (seen.has(marker) || tail.includes(marker)) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no "${marker}" within ${timeoutMs} ms: ${tail}`)), timeoutMs);
        void exited.then(() => reject(new Error(`the worker exited before "${marker}": ${tail}`)));
        waiting.set(marker, () => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
    async ended(timeoutMs) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${args.join(' ')} still ran after ${timeoutMs} ms: ${tail}`)),
          timeoutMs,
        );
      });
      try {
        await Promise.race([exited, late]);
      } finally {
        clearTimeout(timer);
      }
      // Streams may still hold the last output when 'exit' fires.
      if (!child.stdout.readableEnded) await once(child.stdout, 'end').catch(() => undefined);
      return child.exitCode;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      try {
        await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** Peak resident set size of a live process, from /proc (Linux). */
export function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmHWM:\s+(\d+) kB/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(kb) / 1024;
}

/** User plus system CPU time of a process so far, in ms (from /proc/<pid>/stat, in clock ticks). */
export function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** Every live process's children, by parent pid, from /proc (Linux). */
export function childProcesses(): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // The parent's pid follows the state, after the command's closing parenthesis.
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(parent, [...(children.get(parent) ?? []), Number(name)]);
    } catch {
      // Gone meanwhile.
    }
  }
  return children;
}

/**
 * CPU time of a process and every process under it so far, in ms: each one's own user and system
 * time plus that of its children it already reaped (a browser's renderers come and go).
 */
export function processTreeCpuMs(root: number): number {
  const children = childProcesses();
  let ticks = 0;
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop() as number;
    stack.push(...(children.get(pid) ?? []));
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
    } catch {
      // Gone meanwhile: its time is in its parent's reaped-children time once reaped.
    }
  }
  return (ticks * 1000) / 100;
}
