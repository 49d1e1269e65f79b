import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FleetMetrics } from '@crawlfleet/metrics';
import { describe, expect, it } from 'vitest';

const root = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));

/** Metric names a PromQL expression uses (histogram series map back to their histogram). */
function metricsIn(expr: string): string[] {
  const cleaned = expr
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/offset\s+\w+/g, '')
    .replace(/by \([^)]*\)/g, '')
    .replace(/\b\d[\d.]*(e-?\d+)?\b/g, '');
  // Identifiers not followed by "(" are metric names; functions are.
  const names = cleaned.match(/[a-z_][a-z0-9_]*(?!\w|\s*\()/g) ?? [];
  return names.map((name) => name.replace(/_(bucket|count|sum)$/, ''));
}

describe('the Prometheus rules and Grafana dashboard in infra/', () => {
  const registry = new FleetMetrics().registry;
  const known = new Set(registry.getMetricsAsArray().map((metric) => metric.name));

  it('alert only on metrics the worker exports, including the three the design asks for and a full outbox', () => {
    const rules = readFileSync(root('infra/prometheus/alerts.yml'), 'utf8');
    const exprs = [...rules.matchAll(/^\s+expr: (.+)$/gm)].map((m) => String(m[1]));
    expect(exprs).toHaveLength(5);
    for (const expr of exprs) for (const name of metricsIn(expr)) expect(known, `${name} in ${expr}`).toContain(name);
    expect(rules).toMatch(/http_429_total\[15m\].*> 0\.05\n\s+for: 15m/);
    expect(rules).toContain('crawl_queue_jobs{state="dlq"}');
    expect(rules).toContain('reason="breaker_open"');
    expect(rules).toMatch(/max\(results_outbox_backpressure\) > 0\n\s+for: 5m/);
  });

  it('chart only metrics the worker exports', () => {
    const dashboard = JSON.parse(readFileSync(root('infra/grafana/crawlfleet-dashboard.json'), 'utf8'));
    const exprs: string[] = dashboard.panels.flatMap((panel: { targets: Array<{ expr: string }> }) =>
      panel.targets.map((t) => t.expr),
    );
    expect(exprs.length).toBeGreaterThanOrEqual(10);
    for (const expr of exprs) for (const name of metricsIn(expr)) expect(known, `${name} in ${expr}`).toContain(name);
  });
});
