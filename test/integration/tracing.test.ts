import { Writable } from 'node:stream';
import { createLogger } from '@crawlfleet/log';
import { inSpan } from '@crawlfleet/tracing';
import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { startTestWorker, submit } from '../src/fleet.js';
import { cleanupPrefix, keyLayout, openTestRedis, testConfig, uniquePrefix, waitFor } from '../src/harness.js';
import { soleShard } from '../src/shard.js';

describe('traces from submit to commit', () => {
  const exporter = new InMemorySpanExporter();
  let site: FixtureSite;
  let redis: Redis;
  const prefix = uniquePrefix('tracing');

  beforeAll(async () => {
    // What the Node SDK sets up when OTEL_* asks for traces, with an exporter the test can read.
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    site = await startFixtureSite();
    redis = openTestRedis();
  });
  afterAll(async () => {
    trace.disable();
    context.disable();
    propagation.disable();
    await cleanupPrefix(redis, prefix);
    redis.disconnect();
    await site.close();
  });

  const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;

  it('continues the producer trace in the worker: one span per job, children for hydrate, fetch, commit and write', async () => {
    const keys = keyLayout(prefix);
    const config = testConfig();
    const [job] = await submit(redis, keys, config, [{ url: site.url('/cookies/set?traced=1') }], 'default', 'traced');
    const queued = JSON.parse(String(await redis.hget(keys.crawlJob(String(job?.idempotencyKey)), 'data')));
    expect(queued.trace.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);

    const worker = await startTestWorker(keys, config);
    try {
      await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === 1);
      await waitFor(() => exporter.getFinishedSpans().some((s) => s.name === 'crawl.job'), { what: 'the job span' });
    } finally {
      await worker.stop();
    }
    const spans = exporter.getFinishedSpans();
    const named = (name: string) => spans.filter((s) => s.name === name);
    const [submitted] = named('crawlfleet.submit');
    const [jobSpan] = named('crawl.job');
    expect(submitted).toBeDefined();
    expect(jobSpan?.spanContext().traceId).toBe(submitted?.spanContext().traceId);
    expect(parentOf(jobSpan as ReadableSpan)).toBe(submitted?.spanContext().spanId);
    for (const child of ['session.hydrate', 'http.fetch', 'session.commit', 'result.write']) {
      const [span] = named(child);
      expect(span, child).toBeDefined();
      expect(parentOf(span as ReadableSpan), child).toBe(jobSpan?.spanContext().spanId);
      expect(span?.spanContext().traceId).toBe(submitted?.spanContext().traceId);
    }
    expect(named('http.fetch')[0]?.attributes['http.response.status_code']).toBe(200);
  });

  it('routes a failure to the DLQ under its own span', async () => {
    const keys = keyLayout(prefix);
    const config = testConfig();
    await submit(redis, keys, config, [{ url: site.url('/status/410') }]);
    const worker = await startTestWorker(keys, config);
    try {
      await waitFor(() => exporter.getFinishedSpans().find((s) => s.name === 'dlq.route'), { what: 'the DLQ span' });
    } finally {
      await worker.stop();
    }
    const route = exporter.getFinishedSpans().find((s) => s.name === 'dlq.route');
    const jobSpan = exporter.getFinishedSpans().find((s) => s.spanContext().spanId === parentOf(route as ReadableSpan));
    expect(jobSpan?.name).toBe('crawl.job');
  });

  it('writes the active trace and span ids on log lines', async () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const logger = createLogger({ name: 't', level: 'info', destination });
    const ids = await inSpan('logging', {}, async (span) => {
      logger.info('inside a span');
      return span.spanContext();
    });
    logger.info('outside');
    const [inside, outside] = lines.map((line) => JSON.parse(line));
    expect(inside).toMatchObject({ trace_id: ids.traceId, span_id: ids.spanId });
    expect(outside.trace_id).toBeUndefined();
  });
});
