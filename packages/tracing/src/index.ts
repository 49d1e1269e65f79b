export {
  exitAfterOutput,
  type StopTracing,
  startTracing,
  type TracingOptions,
  type TracingShutdown,
  tracingWanted,
} from './start-tracing.js';
export {
  activeTraceIds,
  contextOf,
  injectTrace,
  inSpan,
  SpanKind,
  type TraceCarrier,
} from './tracing.js';
