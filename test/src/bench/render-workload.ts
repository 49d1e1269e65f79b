import type { KeyLayout } from '@crawlfleet/core';
import { SessionCookieJar } from '@crawlfleet/sessions';
import { SlateStore } from '@crawlfleet/slates';
import { testRing } from '../harness.js';
import { type Bench, type BenchJob, sessionOf, type Workload } from './fleet.js';
import type { CheckOutcome } from './workloads.js';

/** The cookie each `/js/set-cookie` page's script sets, its value the job's id. */
const COOKIE = 'consent';
/** The localStorage entry each `/js/storage` page's script writes, its value the job's id. */
const STORAGE_KEY = 'seen';

/**
 * The render part's pages: job i goes to session i mod `sessions`; each round of `sessions` jobs
 * gives every session one page, the rounds alternating between a page whose script sets a cookie
 * and one whose script writes localStorage, each value new (the job's id). So every job changes
 * its session's state and a render job's whole write path runs: the cookie back through the jar,
 * the storage into the session's storage slate. The baseline renders the same pages, sessionless.
 */
export function renderWorkload(sessions: number, contexts: number): Workload {
  return {
    sessions,
    freshSessions: false,
    concurrency: contexts,
    page: (job: BenchJob) =>
      Math.floor(job.index / sessions) % 2 === 0
        ? `/js/set-cookie?name=${COOKIE}&value=${job.id}`
        : `/js/storage?key=${STORAGE_KEY}&value=${job.id}`,
  };
}

/**
 * What a crawlfleet run must have left in its sessions: each session that had a cookie page
 * among the measured jobs holds `consent` from one of them, each that had a storage page holds
 * `seen` from one of them for the site's origin (the warm-up's values do not count). Read from
 * Redis through the slate store with the key ring the workers seal with.
 */
export async function checkRenderState(
  bench: Bench,
  keys: KeyLayout,
  workload: Workload,
  /** The measured batch: its tag (the start of its jobs' ids) and its jobs. */
  run: { tag: string; pages: number },
): Promise<CheckOutcome> {
  const what = 'cookies and storage entries';
  const measured = (value: string | undefined) => value?.startsWith(`${run.tag}-`) === true;
  const { sessions } = workload;
  const cookieSessions = Math.min(sessions, run.pages);
  const storageSessions = Math.min(sessions, Math.max(0, run.pages - sessions));
  const expected = cookieSessions + storageSessions;
  try {
    const store = new SlateStore(bench.control, keys, testRing());
    let found = 0;
    for (let n = 0; n < sessions; n++) {
      const sessionId = sessionOf(workload, run.tag, n) as string;
      const slates = await store.read(store.session('default', sessionId), ['cookies', 'storage']);
      const { jar } = await SessionCookieJar.fromSlate(slates.get('cookies')?.value);
      const cookie = (await jar.liveCookies()).find((c) => c.key === COOKIE);
      if (n < cookieSessions && measured(cookie?.value)) found++;
      const storage = slates.get('storage')?.value as
        | Record<string, ReadonlyArray<{ name: string; value: string }>>
        | undefined;
      const entry = storage?.[bench.site.origin]?.find((e) => e.name === STORAGE_KEY);
      if (n < storageSessions && measured(entry?.value)) found++;
    }
    return { what, found, expected };
  } catch (error) {
    return { what, found: 0, expected, error: error instanceof Error ? error.message : String(error) };
  }
}
