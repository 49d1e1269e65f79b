import { once } from 'node:events';
import type { TargetProblem } from '@crawlfleet/producer';

/** Writes a line to stdout, waiting when the pipe is full (exports can be large). */
export async function writeLine(stream: NodeJS.WritableStream, line: string): Promise<void> {
  if (!stream.write(`${line}\n`)) await once(stream, 'drain');
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

/** A message for the person at the terminal (stderr, so stdout stays data). */
export function say(message: string): void {
  process.stderr.write(`${message}\n`);
}

/** How many bad targets a refused submit lists; the rest are only counted. */
const BAD_TARGETS_LISTED = 20;

/**
 * Lists the bad targets of a refused submit on stderr, one line each, before the error that
 * counts them. A single one is the error's own message, so it is not listed.
 */
export function sayBadTargets(problems: readonly TargetProblem[]): void {
  if (problems.length < 2) return;
  for (const problem of problems.slice(0, BAD_TARGETS_LISTED)) say(`crawlfleet: ${problem.where}: ${problem.message}`);
  if (problems.length > BAD_TARGETS_LISTED) say(`crawlfleet: and ${problems.length - BAD_TARGETS_LISTED} more`);
}

/** Plain aligned columns; the last column is not padded. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((header, i) => Math.max(header.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

export function plural(count: number, word: string): string {
  if (count === 1) return `${count} ${word}`;
  return `${count} ${word.endsWith('y') ? `${word.slice(0, -1)}ie` : word}s`;
}

/**
 * A one-line progress display on stderr: redrawn in place on a terminal, printed every few
 * seconds otherwise (so CI logs and pipes still show progress without flooding).
 */
export class ProgressLine {
  private lastPrint = 0;
  private readonly tty = process.stderr.isTTY === true;

  update(text: string, force = false): void {
    const now = Date.now();
    if (this.tty) {
      process.stderr.write(`\r\x1b[2K${text}`);
    } else if (force || now - this.lastPrint >= 5_000) {
      process.stderr.write(`${text}\n`);
      this.lastPrint = now;
    }
  }

  done(): void {
    if (this.tty) process.stderr.write('\r\x1b[2K');
  }
}
