import { collectorOf, TelemetryFailureReport } from './telemetry-failures.js';

export interface TracingOptions {
  /** `service.name` of the spans, unless `OTEL_SERVICE_NAME` says otherwise; also starts the failure line. */
  serviceName: string;
  /** Where the `OTEL_*` settings are read. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** How long the shutdown waits for pending spans to reach the collector. Default 2 s. */
  flushTimeoutMs?: number;
}

const DEFAULT_FLUSH_TIMEOUT_MS = 2_000;

/**
 * How a shutdown ended: everything pending was sent (or nothing was started), or not. After
 * `'unsent'` an exporter may still hold sockets and retry timers that keep the process alive;
 * an entry point then ends itself (`exitAfterOutput`).
 */
export type TracingShutdown = 'flushed' | 'unsent';

/** Flushes pending spans (bounded in time) and stops the SDK; never rejects. */
export type StopTracing = () => Promise<TracingShutdown>;

/**
 * Starts the OpenTelemetry Node SDK when the environment asks for traces
 * (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_TRACES_EXPORTER`),
 * configured by the standard `OTEL_*` variables. Otherwise nothing is started and every span is a
 * no-op. Telemetry never decides how a process ends: the first failed export is reported in one
 * line on stderr, and the returned shutdown waits for the collector at most `flushTimeoutMs`.
 */
export async function startTracing(options: TracingOptions): Promise<StopTracing> {
  const env = options.env ?? process.env;
  if (!tracingWanted(env)) return async () => 'flushed';
  const failures = new TelemetryFailureReport(options.serviceName, collectorOf(env));
  const { NodeSDK, core } = await import('@opentelemetry/sdk-node');
  const { HttpInstrumentation } = await import('@opentelemetry/instrumentation-http');
  // Exporters hand a failed batch to the global error handler; its default only tells `diag`,
  // which prints nothing unless OTEL_LOG_LEVEL is set. Keep telling `diag` as well.
  const toDiag = core.loggingErrorHandler();
  core.setGlobalErrorHandler((error) => {
    failures.report({ reason: 'export_failed', error });
    toDiag(error);
  });
  const sdk = new NodeSDK({
    serviceName: env.OTEL_SERVICE_NAME || options.serviceName,
    // One CLIENT span per HTTP request the fetcher makes (each redirect hop is its own request).
    // Incoming requests are the metrics and health endpoints and the board: not worth a trace.
    instrumentations: [new HttpInstrumentation({ ignoreIncomingRequestHook: () => true })],
  });
  sdk.start();
  const flushTimeoutMs = options.flushTimeoutMs ?? DEFAULT_FLUSH_TIMEOUT_MS;
  return async () => {
    let timer: NodeJS.Timeout | undefined;
    const outOfTime = new Promise<'timed_out'>((resolve) => {
      timer = setTimeout(() => resolve('timed_out'), flushTimeoutMs);
    });
    const outcome = await Promise.race([
      sdk.shutdown().then(
        () => 'flushed' as const,
        (error: unknown) => {
          failures.report({ reason: 'export_failed', error });
          return 'unsent' as const;
        },
      ),
      outOfTime,
    ]);
    clearTimeout(timer);
    if (outcome !== 'timed_out') return outcome;
    failures.report({ reason: 'flush_timeout', timeoutMs: flushTimeoutMs });
    return 'unsent';
  };
}

/** Whether the environment asks for traces (the standard OpenTelemetry variables). */
export function tracingWanted(env: NodeJS.ProcessEnv = process.env): boolean {
  const exporter = env.OTEL_TRACES_EXPORTER;
  return Boolean(
    env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || (exporter && exporter !== 'none'),
  );
}

/**
 * Ends the process with the exit code it chose, once stdout and stderr have written what they
 * hold (writes to pipes are asynchronous on POSIX, and `process.exit` would cut them off). For an
 * entry point whose tracing shutdown came back `'unsent'`.
 */
export async function exitAfterOutput(): Promise<never> {
  await Promise.all(
    [process.stdout, process.stderr].map((stream) => new Promise<void>((resolve) => stream.write('', () => resolve()))),
  );
  process.exit();
}
