import type { KeyLayout } from '@crawlfleet/core';
import { type Bench, type BenchJob, sessionOf, type Workload } from './fleet.js';
import { sessionCookieNames } from './session-view.js';

/** Jobs each side processes at once in the matrix, as the measurements did. */
export const MATRIX_CONCURRENCY = 50;
/** Most Redis commands per crawlfleet job on the hot path, for every workload. */
export const COMMANDS_PER_JOB_TARGET = 3;
/** Least crawlfleet jobs/s (changing-cookie-100) over Crawlee pages/s on the same pages. */
export const CRAWLEE_RATIO_TARGET = 3;

/** What a check of the state a run left found: `found` of the `expected` things that must be there. */
export interface CheckOutcome {
  what: string;
  found: number;
  expected: number;
  /** The check itself could not run (the CLI failed): the workload fails. */
  error?: string;
}

/** A workload of the matrix: measured against the bare worker in the same rounds. */
export interface MatrixWorkload extends Workload {
  name: string;
  /** Least crawlfleet/baseline jobs/s ratio that passes; none: informational. */
  target?: number;
  /** Crawlee's HttpCrawler fetches the same pages as a third side, in the same rounds. */
  crawlee?: boolean;
  /** Checks the state each measured crawlfleet run left, before Redis is cleared. */
  check?: (bench: Bench, keys: KeyLayout) => Promise<CheckOutcome>;
}

/** Cookies the hot session must keep, one added by each of the first this many measured jobs. */
const HOT_COOKIES = 50;

const plainPage = (job: BenchJob) => `/ok/${job.id}`;
/** `sid=<random>` (a value that changes on every response, as AWSALB does) plus _ga, _gid and _fbp. */
const changingCookiePage = (job: BenchJob) => `/tracking-cookies?i=${job.id}`;

/**
 * Every page sets `lb`, whose value changes on every response; measured job i < 50 also adds
 * `k<i>`. Each k-cookie is set once only, by the first 50 jobs that all start together on the
 * one session, so a cookie lost by any commit of the run stays lost and the check sees it (set
 * again every 50 jobs, a lost one would come back and hide the loss).
 */
const hotPage = (job: BenchJob) =>
  !job.warmup && job.index < HOT_COOKIES ? `/cookies/set?lb=${job.id}&k${job.index}=1` : `/cookies/set?lb=${job.id}`;

const hotSession: MatrixWorkload = {
  name: 'hot-session',
  sessions: 1,
  freshSessions: false,
  concurrency: MATRIX_CONCURRENCY,
  page: hotPage,
  target: 0.5,
  async check(bench, keys) {
    const what = 'k-cookies';
    const expected = HOT_COOKIES;
    try {
      const sessionId = sessionOf(hotSession, '', 0) as string;
      const names = new Set(await sessionCookieNames(bench, keys, sessionId));
      const found = Array.from({ length: expected }, (_, i) => `k${i}`).filter((name) => names.has(name)).length;
      return { what, found, expected };
    } catch (error) {
      return { what, found: 0, expected, error: error instanceof Error ? error.message : String(error) };
    }
  },
};

/** The matrix, in the order it runs. */
export const MATRIX_WORKLOADS: readonly MatrixWorkload[] = [
  {
    name: 'no-session',
    sessions: 0,
    freshSessions: false,
    concurrency: MATRIX_CONCURRENCY,
    page: plainPage,
    target: 0.9,
  },
  {
    name: 'no-session-cookies',
    sessions: 0,
    freshSessions: false,
    concurrency: MATRIX_CONCURRENCY,
    page: changingCookiePage,
  },
  {
    name: 'fresh-100',
    sessions: 100,
    freshSessions: true,
    concurrency: MATRIX_CONCURRENCY,
    page: plainPage,
    target: 0.85,
  },
  {
    name: 'same-cookie-100',
    sessions: 100,
    freshSessions: true,
    concurrency: MATRIX_CONCURRENCY,
    // The session cookie again, unchanged, and a new tracker on every page.
    page: (job) => `/cookies/set?sid=1&_ga=GA1.1.${job.id}`,
    target: 0.85,
  },
  {
    name: 'changing-cookie-100',
    sessions: 100,
    freshSessions: true,
    concurrency: MATRIX_CONCURRENCY,
    page: changingCookiePage,
    target: 0.75,
    crawlee: true,
  },
  {
    name: 'sessions-1000',
    sessions: 1_000,
    freshSessions: true,
    concurrency: MATRIX_CONCURRENCY,
    page: changingCookiePage,
  },
  hotSession,
];

/**
 * The workloads a comma-separated list names (CRAWLFLEET_BENCH_WORKLOADS), in the matrix's
 * order; all of them when the list is unset or empty.
 */
export function selectWorkloads(list: string | undefined): MatrixWorkload[] {
  const names = (list ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  if (names.length === 0) return [...MATRIX_WORKLOADS];
  const known = new Set(MATRIX_WORKLOADS.map((w) => w.name));
  const unknown = names.filter((name) => !known.has(name));
  if (unknown.length > 0)
    throw new Error(
      `CRAWLFLEET_BENCH_WORKLOADS names no workload ${unknown.join(', ')}; known: ${[...known].join(', ')}`,
    );
  return MATRIX_WORKLOADS.filter((w) => names.includes(w.name));
}
