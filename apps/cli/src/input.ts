import { readFile } from 'node:fs/promises';
import { text } from 'node:stream/consumers';
import { InputError } from '@crawlfleet/core';
import { parseTargetLines, type SubmitTarget } from '@crawlfleet/producer';

export interface TargetSources {
  urls: string[];
  file?: string | undefined;
  key?: string | undefined;
  method?: string | undefined;
}

/** Collects targets from arguments and `--file F` (or `-` for stdin). */
export async function readTargets(sources: TargetSources): Promise<SubmitTarget[]> {
  const targets: SubmitTarget[] = sources.urls.map((url) => ({ url }));
  if (sources.file !== undefined) {
    let content: string;
    if (sources.file === '-') {
      content = await text(process.stdin);
    } else {
      try {
        content = await readFile(sources.file, 'utf8');
      } catch (error) {
        const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (error as Error).message;
        throw new InputError('invalid_file', `--file ${sources.file}: ${reason}`);
      }
    }
    targets.push(...parseTargetLines(content, sources.file === '-' ? 'stdin' : sources.file));
  }
  if (targets.length === 0)
    throw new InputError('no_targets', 'nothing to submit: give URLs as arguments or --file F (- for stdin)');
  if (sources.key !== undefined) {
    if (targets.length !== 1)
      throw new InputError('invalid_key', `--key names one job, but ${targets.length} targets were given`);
    targets[0] = { ...targets[0], url: targets[0]?.url ?? '', key: sources.key };
  }
  if (sources.method !== undefined) for (const target of targets) target.method ??= sources.method;
  return targets;
}
