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

  it('alert only on metrics the worker exports, including the three the design asks for, a full outbox and failing renders', () => {
    const rules = readFileSync(root('infra/prometheus/alerts.yml'), 'utf8');
    const exprs = [...rules.matchAll(/^\s+expr: (.+)$/gm)].map((m) => String(m[1]));
    expect(exprs).toHaveLength(6);
    for (const expr of exprs) for (const name of metricsIn(expr)) expect(known, `${name} in ${expr}`).toContain(name);
    expect(rules).toMatch(/http_429_total\[15m\].*> 0\.05\n\s+for: 15m/);
    expect(rules).toContain('crawl_queue_jobs{state="dlq"}');
    expect(rules).toContain('reason="breaker_open"');
    expect(rules).toMatch(/max\(results_outbox_backpressure\) > 0\n\s+for: 5m/);
    // Render failures: the browser's timeouts and failures, not the sites' own error pages.
    expect(rules).toMatch(/pages_rendered_total\{outcome=~"timeout\|failed"\}\[15m\].*> 0\.25\n\s+for: 15m/);
  });

  it('chart only metrics the worker exports', () => {
    const dashboard = JSON.parse(readFileSync(root('infra/grafana/crawlfleet-dashboard.json'), 'utf8'));
    const exprs: string[] = dashboard.panels.flatMap((panel: { targets: Array<{ expr: string }> }) =>
      panel.targets.map((t) => t.expr),
    );
    expect(exprs.length).toBeGreaterThanOrEqual(10);
    for (const expr of exprs) for (const name of metricsIn(expr)) expect(known, `${name} in ${expr}`).toContain(name);
    // Browser workers have panels of their own.
    const charted = new Set(exprs.flatMap(metricsIn));
    for (const name of [
      'pages_rendered_total',
      'headless_context_launch_latency',
      'browser_contexts_open',
      'cookie_jar_mutation_frequency',
      'browser_cookies_dropped_total',
    ])
      expect(charted, name).toContain(name);
  });
});
