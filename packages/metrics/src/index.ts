export { FleetMetrics, type MetricSources } from './fleet-metrics.js';
export { type MetricsServerOptions, serveMetrics } from './metrics-server.js';
