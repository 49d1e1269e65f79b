import {
  type Attributes,
  type Context,
  context,
  INVALID_SPAN_CONTEXT,
  ProxyTracerProvider,
  propagation,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';

/** W3C trace context as it travels in job data. */
export interface TraceCarrier {
  traceparent: string;
  tracestate?: string | undefined;
}

const tracer = () => trace.getTracer('crawlfleet', '0.1.0');

/** What the API hands out while no tracer provider is registered. */
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate();
const NOT_RECORDING = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/** Whether a tracer provider is registered (by `startTracing`, or by a test's own). */
function tracingRegistered(): boolean {
  const provider = trace.getTracerProvider();
  return !(provider instanceof ProxyTracerProvider) || provider.getDelegate() !== NOOP_PROVIDER;
}

/** The current trace context, to put into a job; undefined when tracing is off. */
export function injectTrace(): TraceCarrier | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  if (carrier.traceparent === undefined) return undefined;
  return carrier.tracestate === undefined
    ? { traceparent: carrier.traceparent }
    : { traceparent: carrier.traceparent, tracestate: carrier.tracestate };
}

/** The context a job's trace continues from (the producer's), or the current one. */
export function contextOf(carrier: TraceCarrier | undefined): Context {
  return carrier === undefined ? context.active() : propagation.extract(context.active(), { ...carrier });
}

/**
 * Runs `work` inside a span that is active for it (so child spans and log lines find it), and
 * ends the span however `work` ends. A thrown error is recorded on the span unless `expected`
 * says it is part of the normal flow (a delayed job, a scheduled retry).
 */
export function inSpan<T>(
  name: string,
  options: { attributes?: Attributes; kind?: SpanKind; parent?: Context; expected?: (error: unknown) => boolean },
  work: (span: Span) => Promise<T>,
): Promise<T> {
  // Without a provider every span is a no-op: skip the context bookkeeping around the work.
  if (!tracingRegistered()) return work(NOT_RECORDING);
  return tracer().startActiveSpan(
    name,
    { kind: options.kind ?? SpanKind.INTERNAL, attributes: options.attributes },
    options.parent ?? context.active(),
    async (span) => {
      try {
        return await work(span);
      } catch (error) {
        if (!options.expected?.(error)) {
          span.recordException(error as Error);
          span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
        }
        throw error;
      } finally {
        span.end();
      }
    },
  );
}

/** The ids of the active span, for log lines; empty when there is none. */
export function activeTraceIds(): { trace_id?: string; span_id?: string } {
  const span = trace.getActiveSpan();
  if (span === undefined) return {};
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}

export { SpanKind };
