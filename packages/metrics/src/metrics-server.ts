import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

export interface MetricsServerOptions {
  port: number;
  /** Default 0.0.0.0, so probes and scrapers outside the pod or host can reach it. */
  host?: string;
  /** False while the worker drains or cannot work: /healthz then answers 503. */
  healthy: () => boolean;
}

/** `/metrics` (Prometheus text) and `/healthz` (200 ok, or 503 while draining). */
export async function serveMetrics(registry: Registry, options: MetricsServerOptions): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      const healthy = options.healthy();
      res.writeHead(healthy ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(healthy ? 'ok\n' : 'draining\n');
      return;
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(text);
        },
        (error: Error) => {
          res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
          res.end(`metrics failed: ${error.message}\n`);
        },
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
    res.end('try /metrics or /healthz\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => resolve());
  });
  return server;
}
