export {
  activeTraceIds,
  contextOf,
  injectTrace,
  inSpan,
  SpanKind,
  startTracing,
  type TraceCarrier,
  tracingWanted,
} from './tracing.js';
