import type { CrawlObserver } from '@crawlfleet/core';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** Readings taken when Prometheus scrapes, rather than on every job. */
export interface MetricSources {
  /** Job counts of the worker's queue by state, and the DLQ size. */
  queueDepths?(): Promise<Record<string, number>>;
  /** The worker's queue: `crawl`, or `crawl-render` for a browser worker (default `crawl`). */
  queueName?(): string;
  /** Requests sent and requests that reused a kept-alive socket. */
  connections?(): { requests: number; reused: number };
  /** The results outbox as this worker last saw it, and whether it holds back because it is full. */
  outbox?(): { entries: number; bytes: number; holding: boolean } | undefined;
}

const ratio = (part: number, whole: number) => (whole === 0 ? 0 : part / whole);

/**
 * A worker's metrics, in its own registry: counters and histograms fed by the crawl path
 * (`CrawlObserver`), ratios and queue depths computed at scrape time.
 */
export class FleetMetrics implements CrawlObserver {
  readonly registry = new Registry();
  private readonly jobs: Counter<'outcome' | 'error_class' | 'reason'>;
  private readonly fetchDuration: Histogram<'status_class'>;
  private readonly retries: Counter;
  private readonly backoff: Histogram;
  private readonly stateSync: Histogram<'phase'>;
  private readonly jarSize: Histogram;
  private readonly jarMutations: Counter;
  private readonly sessionsCreated: Counter;
  private readonly sessionsDestroyed: Counter;
  private readonly invalidations: Counter<'reason'>;
  private readonly ephemeral: Counter;
  private readonly logins: Counter<'kind' | 'outcome'>;
  private readonly cookiesEvictedTotal: Counter;
  private readonly responsesTotal: Counter;
  private readonly responses429Total: Counter;
  private readonly tlsVersions: Counter<'version'>;
  private readonly cipherSuites: Counter<'cipher'>;
  private readonly mutationFrequency: Histogram<'source'>;
  private readonly contextLaunch: Histogram;
  private readonly contextsOpen: Gauge;
  private readonly pagesRendered: Counter<'outcome'>;
  private readonly browserCookiesDroppedTotal: Counter<'reason'>;
  private identityRequests = 0;
  private identityConsistent = 0;
  private responses = 0;
  private responses429 = 0;
  private retriedSucceeded = 0;
  private retriedFailed = 0;

  constructor(sources: MetricSources = {}) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.jobs = new Counter({
      name: 'crawl_jobs_total',
      help: 'Jobs by outcome and error class',
      labelNames: ['outcome', 'error_class', 'reason'],
      registers,
    });
    this.fetchDuration = new Histogram({
      name: 'fetch_duration_ms',
      help: 'Time from request to the whole response body, in ms',
      labelNames: ['status_class'],
      buckets: [5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000],
      registers,
    });
    this.retries = new Counter({ name: 'retry_total', help: 'Retries scheduled', registers });
    this.backoff = new Histogram({
      name: 'backoff_duration_ms',
      help: 'Delay chosen before a retry, in ms',
      buckets: [10, 100, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000, 300_000],
      registers,
    });
    this.stateSync = new Histogram({
      name: 'state_sync_duration_ms',
      help: 'Session state hydrate and commit time, and its moves into and out of browser contexts, in ms',
      labelNames: ['phase'],
      buckets: [0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250],
      registers,
    });
    this.jarSize = new Histogram({
      name: 'cookie_jar_size_bytes',
      help: 'Serialized size of a stored cookie jar',
      buckets: [256, 1_024, 4_096, 16_384, 65_536, 262_144],
      registers,
    });
    this.jarMutations = new Counter({
      name: 'cookie_jar_mutation_total',
      help: 'Cookies set or changed by jobs and stored',
      registers,
    });
    this.sessionsCreated = new Counter({
      name: 'session_creation_total',
      help: 'Sessions that started with no stored state',
      registers,
    });
    this.sessionsDestroyed = new Counter({
      name: 'session_destruction_total',
      help: 'Sessions whose state was flushed (quarantine)',
      registers,
    });
    this.invalidations = new Counter({
      name: 'session_invalidation_triggers_total',
      help: 'Session state thrown away or held back, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.responsesTotal = new Counter({ name: 'http_responses_total', help: 'Responses received', registers });
    this.responses429Total = new Counter({
      name: 'http_429_total',
      help: 'Responses that were 429 (for rates over a window)',
      registers,
    });
    this.ephemeral = new Counter({
      name: 'session_ephemeral_total',
      help: 'Jobs run on an ephemeral session (session store unreachable)',
      registers,
    });
    this.logins = new Counter({
      name: 'session_logins_total',
      help: 'Session logins and token refreshes, by outcome (ok, refused)',
      labelNames: ['kind', 'outcome'],
      registers,
    });
    this.cookiesEvictedTotal = new Counter({
      name: 'session_cookies_evicted_total',
      help: 'Cookies dropped (oldest first) to keep session jars within browser-like limits',
      registers,
    });
    this.tlsVersions = new Counter({
      name: 'tls_version_distribution',
      help: 'https responses by the TLS version their connection agreed on (never below TLSv1.2)',
      labelNames: ['version'],
      registers,
    });
    this.cipherSuites = new Counter({
      name: 'cipher_suite_usage',
      help: 'https responses by the cipher suite their connection agreed on (IANA name)',
      labelNames: ['cipher'],
      registers,
    });
    this.mutationFrequency = new Histogram({
      name: 'cookie_jar_mutation_frequency',
      help: "Cookies one job changed in its session's jar, by where (http responses, browser pages)",
      labelNames: ['source'],
      buckets: [0, 1, 2, 5, 10, 25, 50, 100],
      registers,
    });
    this.contextLaunch = new Histogram({
      name: 'headless_context_launch_latency',
      help: 'Time to open a browser context for a render job or a browser login (a new browser included), in ms',
      buckets: [5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000],
      registers,
    });
    this.contextsOpen = new Gauge({
      name: 'browser_contexts_open',
      help: 'Browser contexts open in this worker now',
      registers,
    });
    this.pagesRendered = new Counter({
      name: 'pages_rendered_total',
      help: "Render jobs' pages by outcome: rendered, http_error, timeout, refused (address, robots, download), failed",
      labelNames: ['outcome'],
      registers,
    });
    this.browserCookiesDroppedTotal = new Counter({
      name: 'browser_cookies_dropped_total',
      help: 'Session cookies not put into a browser context, by reason (expired, malformed, scope, samesite)',
      labelNames: ['reason'],
      registers,
    });
    // Ratios and depths are computed when Prometheus scrapes, not on every job.
    const metrics = this;
    new Gauge({
      name: 'fingerprint_consistency_score',
      help: "Share of sessions' requests sent exactly as their profile says (user agent, TLS family, proxy); 1 is the goal",
      registers,
      collect() {
        // No session request yet: nothing was inconsistent.
        this.set(metrics.identityRequests === 0 ? 1 : metrics.identityConsistent / metrics.identityRequests);
      },
    });
    new Gauge({
      name: 'http_429_ratio',
      help: 'Share of responses that were 429',
      registers,
      collect() {
        this.set(ratio(metrics.responses429, metrics.responses));
      },
    });
    new Gauge({
      name: 'retry_success_ratio',
      help: 'Share of retried jobs that then succeeded',
      registers,
      collect() {
        this.set(ratio(metrics.retriedSucceeded, metrics.retriedSucceeded + metrics.retriedFailed));
      },
    });
    new Gauge({
      name: 'connection_reuse_ratio',
      help: 'Share of requests sent over a kept-alive socket',
      registers,
      collect() {
        const connections = sources.connections?.() ?? { requests: 0, reused: 0 };
        this.set(ratio(connections.reused, connections.requests));
      },
    });
    new Gauge({
      name: 'results_outbox_entries',
      help: 'Results in the outbox that some sink has not acknowledged (every one while no sink is registered)',
      registers,
      collect() {
        const outbox = sources.outbox?.();
        if (outbox !== undefined) this.set(outbox.entries);
      },
    });
    new Gauge({
      name: 'results_outbox_bytes',
      help: 'Bytes of the results in the outbox',
      registers,
      collect() {
        const outbox = sources.outbox?.();
        if (outbox !== undefined) this.set(outbox.bytes);
      },
    });
    new Gauge({
      name: 'results_outbox_backpressure',
      help: '1 while this worker takes no new jobs because the results outbox is full (results.outboxMaxLen, results.outboxMaxBytes)',
      registers,
      collect() {
        this.set(sources.outbox?.()?.holding ? 1 : 0);
      },
    });
    new Gauge({
      name: 'crawl_queue_jobs',
      help: "Jobs of the worker's queue (crawl, or crawl-render for browser workers) by state, and the DLQ",
      labelNames: ['state', 'queue'],
      registers,
      async collect() {
        const depths = (await sources.queueDepths?.()) ?? {};
        const queue = sources.queueName?.() ?? 'crawl';
        for (const [state, count] of Object.entries(depths)) this.set({ state, queue }, count);
      },
    });
  }

  jobFinished(outcome: string, errorClass: string | undefined, reason: string | undefined): void {
    this.jobs.inc({ outcome, error_class: errorClass ?? 'none', reason: reason?.split(':')[0] ?? 'none' });
  }

  fetched(status: number, durationMs: number, tls?: { version: string; cipher: string }): void {
    this.responses++;
    if (tls !== undefined) {
      this.tlsVersions.inc({ version: tls.version });
      this.cipherSuites.inc({ cipher: tls.cipher });
    }
    this.responsesTotal.inc();
    if (status === 429) {
      this.responses429++;
      this.responses429Total.inc();
    }
    this.fetchDuration.observe({ status_class: `${Math.floor(status / 100)}xx` }, durationMs);
  }

  identityUsed(consistent: boolean): void {
    this.identityRequests++;
    if (consistent) this.identityConsistent++;
  }

  retryScheduled(backoffMs: number): void {
    this.retries.inc();
    this.backoff.observe(backoffMs);
  }

  retryEnded(succeeded: boolean): void {
    if (succeeded) this.retriedSucceeded++;
    else this.retriedFailed++;
  }

  stateSynced(phase: 'hydrate' | 'commit' | 'browser_in' | 'browser_out', durationMs: number): void {
    this.stateSync.observe({ phase }, durationMs);
  }

  cookiesMutated(source: 'http' | 'browser', count: number): void {
    this.mutationFrequency.observe({ source }, count);
  }

  contextOpened(launchMs: number): void {
    this.contextLaunch.observe(launchMs);
    this.contextsOpen.inc();
  }

  contextClosed(): void {
    this.contextsOpen.dec();
  }

  pageRendered(outcome: string): void {
    this.pagesRendered.inc({ outcome });
  }

  browserCookiesDropped(reason: string, count: number): void {
    this.browserCookiesDroppedTotal.inc({ reason }, count);
  }

  jarStored(bytes: number, mutations: number): void {
    this.jarSize.observe(bytes);
    this.jarMutations.inc(mutations);
  }

  sessionCreated(): void {
    this.sessionsCreated.inc();
  }

  sessionInvalidated(reason: string): void {
    this.invalidations.inc({ reason });
    if (reason === 'quarantine') this.sessionsDestroyed.inc();
  }

  sessionEphemeral(): void {
    this.ephemeral.inc();
  }

  sessionLogin(kind: 'login' | 'refresh', outcome: 'ok' | 'refused'): void {
    this.logins.inc({ kind, outcome });
  }

  cookiesEvicted(count: number): void {
    this.cookiesEvictedTotal.inc(count);
  }
}
