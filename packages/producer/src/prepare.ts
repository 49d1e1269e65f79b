import {
  type CrawlfleetConfig,
  checkName,
  type FetchJob,
  InputError,
  type JobCrawl,
  tenantConfig,
} from '@crawlfleet/core';
import { InvalidTargetsError, type TargetProblem } from './errors.js';
import type { TargetList } from './target-lines.js';
import { buildFetchJob, describeSource, type SubmitTarget } from './targets.js';

export interface PrepareOptions {
  tenant: string;
  sessionId?: string | undefined;
  /** The named crawl the targets seed (depth 0). */
  crawl?: JobCrawl | undefined;
  /** Render every target in a browser (`--render`). */
  render?: boolean | undefined;
}

/**
 * Validates every target and builds its job, before anything touches Redis. Every target is
 * checked, whatever the ones before it held: when any is bad, throws `InvalidTargetsError`
 * listing each, with the lines of a target list that name no target, in input order. A lone
 * target that no file names (an argument) throws its own error: it needs no "where".
 */
export function prepareJobs(
  config: CrawlfleetConfig,
  input: readonly SubmitTarget[] | TargetList,
  options: PrepareOptions,
): FetchJob[] {
  const { targets, problems: unreadLines } = 'targets' in input ? input : { targets: input, problems: [] };
  tenantConfig(config, options.tenant);
  if (options.sessionId !== undefined) checkName('--session', options.sessionId);
  const context = {
    tenant: options.tenant,
    sessionId: options.sessionId,
    submittedAt: new Date().toISOString(),
    crawl: options.crawl,
    render: options.render,
  };
  const jobs: FetchJob[] = [];
  const problems: TargetProblem[] = [];
  for (const [index, target] of targets.entries()) {
    try {
      jobs.push(buildFetchJob(target, context));
    } catch (error) {
      if (!(error instanceof InputError)) throw error;
      const lone = targets.length === 1 && unreadLines.length === 0 && target.source?.line === undefined;
      if (lone) throw error;
      problems.push({
        where: target.source === undefined ? `target ${index + 1}` : describeSource(target.source),
        line: target.source?.line,
        code: error.code,
        message: error.message,
      });
    }
  }
  if (problems.length > 0 || unreadLines.length > 0) {
    // Arguments (no line) come before the lines of a file; sort is stable.
    const inOrder = [...unreadLines, ...problems].sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
    throw new InvalidTargetsError(inOrder, { nothingEnqueued: true });
  }
  return jobs;
}
