import { isUtf8 } from 'node:buffer';
import { readFile } from 'node:fs/promises';
import { buffer } from 'node:stream/consumers';
import { InputError } from '@crawlfleet/core';
import { readTargetLines, type TargetList } from '@crawlfleet/producer';

export interface TargetSources {
  urls: string[];
  file?: string | undefined;
  key?: string | undefined;
  method?: string | undefined;
}

/**
 * Collects targets from arguments and `--file F` (or `-` for stdin), each with where it was
 * written, and the lines of the file that name no target; `prepareJobs` reports them all.
 */
export async function readTargets(sources: TargetSources): Promise<TargetList> {
  const list: TargetList = {
    targets: sources.urls.map((url, index) => ({ url, source: { name: `argument ${index + 1}` } })),
    problems: [],
  };
  if (sources.file !== undefined) {
    const file = await readTargetFile(sources.file);
    const lines = readTargetLines(file.text, file.name);
    if (lines.targets.length === 0 && lines.problems.length === 0) {
      throw new InputError('no_targets', `${file.label} names no targets, only comments and blank lines`);
    }
    list.targets.push(...lines.targets);
    list.problems.push(...lines.problems);
  }
  const given = list.targets.length + list.problems.length;
  if (given === 0)
    throw new InputError('no_targets', 'nothing to submit: give URLs as arguments or --file F (- for stdin)');
  if (sources.key !== undefined) {
    if (given !== 1) throw new InputError('invalid_key', `--key names one job, but ${given} targets were given`);
    // The one target may be a line that names none: its problem is reported instead.
    for (const target of list.targets) target.key = sources.key;
  }
  if (sources.method !== undefined) for (const target of list.targets) target.method ??= sources.method;
  return list;
}

interface TargetFile {
  /** What its lines are called in messages: the path as given, or `stdin`. */
  name: string;
  /** What the whole file is called in messages: `--file urls.txt`, or `stdin`. */
  label: string;
  text: string;
}

/** Reads `--file F` (`-`: stdin) as UTF-8 text; an empty file, or one that is not text, is refused. */
async function readTargetFile(file: string): Promise<TargetFile> {
  const stdin = file === '-';
  const name = stdin ? 'stdin' : file;
  const label = stdin ? 'stdin' : `--file ${file}`;
  let bytes: Buffer;
  try {
    bytes = stdin ? await buffer(process.stdin) : await readFile(file);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (error as Error).message;
    throw new InputError('invalid_file', `${label}: ${reason}`);
  }
  if (bytes.length === 0) throw new InputError('empty_file', `${label} is empty`);
  if (bytes.includes(0)) throw new InputError('binary_file', `${label} is not a text file (it holds NUL bytes)`);
  if (!isUtf8(bytes)) throw new InputError('not_utf8', `${label} is not UTF-8 text (line ${firstLineNotUtf8(bytes)})`);
  // TextDecoder drops a leading byte order mark.
  return { name, label, text: new TextDecoder().decode(bytes) };
}

/** The 1-based line of the first byte sequence that is not UTF-8 (none spans a newline). */
function firstLineNotUtf8(bytes: Buffer): number {
  let line = 1;
  for (let start = 0; start < bytes.length; line++) {
    const newline = bytes.indexOf(0x0a, start);
    const end = newline === -1 ? bytes.length : newline;
    if (!isUtf8(bytes.subarray(start, end))) return line;
    start = end + 1;
  }
  return line;
}
