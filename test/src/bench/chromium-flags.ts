import { readFileSync } from 'node:fs';
import { childProcesses } from './worker-process.js';

/**
 * The flags of the Chromium a process launched (its child whose command is Chromium's), from
 * /proc: what a side's browser really ran with, whatever code launched it. The profile folder
 * (a new temporary one per launch) is left out, so two launches with the same settings compare
 * equal. Undefined when the process has no Chromium child (Linux's /proc only).
 */
export function chromiumFlags(parent: number): string[] | undefined {
  for (const pid of childProcesses().get(parent) ?? []) {
    try {
      if (!/chrom/i.test(readFileSync(`/proc/${pid}/comm`, 'utf8'))) continue;
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8')
        .split('\0')
        .filter((arg) => arg.startsWith('--') && !arg.startsWith('--user-data-dir='))
        .sort();
    } catch {
      // Gone meanwhile.
    }
  }
  return undefined;
}

/** Flags only one side's Chromium ran with, each marked with its side; empty when both ran with the same. */
export function flagDifferences(bare: readonly string[], crawlfleet: readonly string[]): string[] {
  const only = (side: string, flags: readonly string[], other: readonly string[]) =>
    flags.filter((flag) => !other.includes(flag)).map((flag) => `${side} only: ${flag}`);
  return [...only('bare', bare, crawlfleet), ...only('crawlfleet', crawlfleet, bare)];
}
