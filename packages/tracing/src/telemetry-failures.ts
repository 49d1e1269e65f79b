/** Why telemetry did not reach the collector. */
export type TelemetryFailure =
  /** An exporter gave up on a batch (refused, reset, timed out after its retries, an error status). */
  | { reason: 'export_failed'; error: unknown }
  /** The shutdown flush was still waiting for the collector when its time ran out. */
  | { reason: 'flush_timeout'; timeoutMs: number };

/** Longest error text quoted in the line, so a collector's answer body cannot flood stderr. */
const MAX_DETAIL = 120;

/**
 * Reports the first telemetry failure of a process in one line and stays quiet after it: a
 * collector that is down fails every batch, and telemetry must never drown the process's own
 * output. Later failures still reach OpenTelemetry's `diag` logger (`OTEL_LOG_LEVEL`).
 */
export class TelemetryFailureReport {
  #reported = false;

  /** `service` starts the line as it starts the process's other messages; `collector` is what `collectorOf` names. */
  constructor(
    private readonly service: string,
    private readonly collector: string,
  ) {}

  report(failure: TelemetryFailure): void {
    if (this.#reported) return;
    this.#reported = true;
    process.stderr.write(`${this.service}: ${this.describe(failure)}; further telemetry failures are not reported\n`);
  }

  private describe(failure: TelemetryFailure): string {
    switch (failure.reason) {
      case 'export_failed':
        return `telemetry export to ${this.collector} failed (${detailOf(failure.error)})`;
      case 'flush_timeout':
        return `telemetry export to ${this.collector} did not finish within ${failure.timeoutMs} ms; unsent spans are dropped`;
    }
  }
}

/** Where telemetry goes, as the one line names it: the OTLP endpoint without credentials or query. */
export function collectorOf(env: NodeJS.ProcessEnv): string {
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (!endpoint) return `the ${env.OTEL_TRACES_EXPORTER ?? 'otlp'} collector`;
  if (!URL.canParse(endpoint)) return 'the configured collector';
  const url = new URL(endpoint);
  return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
}

/** An error as a few words on one line: its first line, and the HTTP status an OTLP/HTTP error carries. */
function detailOf(error: unknown): string {
  const message = error instanceof Error ? error.message || error.name : String(error);
  const code = (error as { code?: unknown } | null)?.code;
  const firstLine = message.split('\n', 1)[0] ?? '';
  // gRPC errors carry a small status code of their own, already named in their message.
  const httpStatus = typeof code === 'number' && code >= 100 && code < 600 ? code : undefined;
  const detail = httpStatus === undefined ? firstLine : `HTTP ${httpStatus} ${firstLine}`.trim();
  return detail.length > MAX_DETAIL ? `${detail.slice(0, MAX_DETAIL)}…` : detail;
}
