export {
  activeTraceIds,
  contextOf,
  injectTrace,
  inSpan,
  registerTracingHooks,
  SpanKind,
  startTracing,
  type TraceCarrier,
  tracingWanted,
} from './tracing.js';
