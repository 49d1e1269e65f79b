import { describeZodError } from '@crawlfleet/core';
import { z } from 'zod';
import { InvalidTargetsError, type TargetProblem } from './errors.js';
import { describeSource, type SubmitTarget } from './targets.js';

const targetLineSchema = z.strictObject({
  url: z.string(),
  method: z.string().optional(),
  headers: z.record(z.string(), z.string()).optional(),
  body: z.string().optional(),
  key: z.string().optional(),
});

/** What a target list holds: the targets its lines name, and the lines that name none. */
export interface TargetList {
  /** In line order, each with its line as `source`. */
  targets: SubmitTarget[];
  /** One per line that is not a target (not JSON, an unknown field), in line order. */
  problems: TargetProblem[];
}

/**
 * Reads a target list: one URL per line, or one JSON object per line
 * (`{"url":..., "method":..., "headers":..., "body":..., "key":...}`). Blank lines and lines
 * starting with `#` are skipped but counted, so a line number is the one an editor shows.
 * Every line is read, whatever the ones before it held; `name` names the list in messages.
 */
export function readTargetLines(text: string, name = 'input'): TargetList {
  const list: TargetList = { targets: [], problems: [] };
  for (const [index, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const source = { name, line: index + 1 };
    if (!line.startsWith('{')) {
      list.targets.push({ url: line, source });
      continue;
    }
    const problem = (message: string) =>
      list.problems.push({ where: describeSource(source), line: source.line, code: 'invalid_target', message });
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      problem('not valid JSON');
      continue;
    }
    const parsed = targetLineSchema.safeParse(json);
    if (parsed.success) list.targets.push({ ...parsed.data, source });
    else {
      const issue = parsed.error.issues[0];
      // A whole-object issue (an unknown field) reads better without the `(root): ` of a path.
      problem(issue !== undefined && issue.path.length === 0 ? issue.message : describeZodError(parsed.error));
    }
  }
  return list;
}

/** Like `readTargetLines`, but throws `InvalidTargetsError` listing every line that is not a target. */
export function parseTargetLines(text: string, name = 'input'): SubmitTarget[] {
  const { targets, problems } = readTargetLines(text, name);
  if (problems.length > 0) throw new InvalidTargetsError(problems);
  return targets;
}
