export {
  activeTraceIds,
  contextOf,
  injectTrace,
  inSpan,
  SpanKind,
  startTracing,
  type TraceCarrier,
} from './tracing.js';
