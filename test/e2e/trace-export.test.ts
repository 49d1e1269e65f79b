import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { cleanupPrefix, openTestRedis, runCli, uniquePrefix } from '../src/harness.js';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: Array<{ key: string; value: Record<string, unknown> }>;
}

/** OTLP span kinds in JSON: 2 server, 3 client, 4 producer, 5 consumer. */
const CLIENT = 3;

describe('traces exported by a real crawlfleet process', () => {
  let site: FixtureSite;
  let redis: Redis;
  let collector: Server;
  let collectorUrl: string;
  let dir: string;
  const spans: OtlpSpan[] = [];
  const prefix = uniquePrefix('otlp');

  beforeAll(async () => {
    site = await startFixtureSite();
    redis = openTestRedis();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-otlp-'));
    // A minimal OTLP/HTTP collector speaking JSON, on loopback.
    collector = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => {
        body += chunk;
      });
      req.on('end', () => {
        if (req.url === '/v1/traces') {
          const payload = JSON.parse(body) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: OtlpSpan[] }> }> };
          for (const resource of payload.resourceSpans)
            for (const scope of resource.scopeSpans) spans.push(...scope.spans);
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', () => resolve()));
    const address = collector.address();
    collectorUrl = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => collector.close(resolve));
    await cleanupPrefix(redis, prefix);
    redis.disconnect();
    await site.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('exports one trace linking submit, job, fetch and result write, from the OTEL_* environment alone', async () => {
    const config = join(dir, 'crawlfleet.config.json');
    writeFileSync(config, JSON.stringify({ tenants: { default: { allowHosts: ['127.0.0.1'], robots: 'ignore' } } }));
    const result = await runCli(['crawl', '--json', site.url('/redirect-chain/1')], {
      env: {
        CRAWLFLEET_CONFIG: config,
        CRAWLFLEET_PREFIX: prefix,
        OTEL_EXPORTER_OTLP_ENDPOINT: collectorUrl,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_METRICS_EXPORTER: 'none',
        OTEL_LOGS_EXPORTER: 'none',
        OTEL_BSP_SCHEDULE_DELAY: '100',
      },
    });
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ fetched: 1 });

    const named = (name: string) => spans.filter((span) => span.name === name);
    const [submitted] = named('crawlfleet.submit');
    const [job] = named('crawl.job');
    const [fetch] = named('http.fetch');
    expect(submitted, 'submit span').toBeDefined();
    expect(job?.traceId).toBe(submitted?.traceId);
    expect(job?.parentSpanId).toBe(submitted?.spanId);
    expect(fetch?.parentSpanId).toBe(job?.spanId);
    const attribute = (span: OtlpSpan | undefined, key: string) => span?.attributes?.find((a) => a.key === key)?.value;
    expect(attribute(fetch, 'http.response.status_code')).toEqual({ intValue: 200 });
    expect(attribute(fetch, 'url.full')).toEqual({ stringValue: site.url('/redirect-chain/1') });
    // The HTTP client instrumentation adds one CLIENT span per request of the redirect chain,
    // in order, under the fetch span.
    const hops = spans.filter((span) => span.kind === CLIENT && span.parentSpanId === fetch?.spanId);
    expect(hops.map((hop) => attribute(hop, 'url.full'))).toEqual([
      { stringValue: site.url('/redirect-chain/1') },
      { stringValue: site.url('/redirect-chain/0') },
    ]);
    expect(hops.map((hop) => attribute(hop, 'http.response.status_code'))).toEqual([
      { intValue: 302 },
      { intValue: 200 },
    ]);
    for (const hop of hops) expect(hop.traceId).toBe(submitted?.traceId);
    for (const name of ['session.commit', 'result.write']) {
      const [span] = named(name);
      if (span !== undefined) expect(span.parentSpanId, name).toBe(job?.spanId);
    }
    expect(named('result.write')).toHaveLength(1);
  });
});
