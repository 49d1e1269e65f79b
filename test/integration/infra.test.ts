import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CRAWL_QUEUE, DEFAULT_PREFIX, keyLayout, NODE_FLAGS } from '@crawlfleet/core';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';

const root = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));
const text = (path: string) => readFileSync(root(path), 'utf8');
// biome-ignore lint/suspicious/noExplicitAny: parsed YAML is walked by hand below.
type Doc = any;

/** Every environment variable the apps read, from their sources. */
const appSources = [
  'apps/worker/src/worker.ts',
  'apps/board/src/main.ts',
  'apps/cli/src/commands/worker.ts',
  'packages/core/src/environment.ts',
  'packages/board/src/board-auth.ts',
  'packages/core/src/config.ts',
  'packages/slates/src/key-source.ts',
]
  .map(text)
  .join('\n');
const readByCode = (name: string) => appSources.includes(name);

const envOf = (container: Doc): Record<string, string | undefined> =>
  Object.fromEntries((container.env ?? []).map((e: Doc) => [e.name, e.value]));

describe('the deployment files in infra/', () => {
  it('configure Redis for BullMQ: append-only persistence and no eviction', () => {
    const conf = text('infra/redis/redis.conf');
    expect(conf).toMatch(/^maxmemory-policy noeviction$/m);
    expect(conf).toMatch(/^appendonly yes$/m);
  });

  it('build a multi-stage, non-root image with production dependencies only, running built entry points', () => {
    const dockerfile = text('infra/Dockerfile');
    expect(dockerfile.match(/^FROM /gm)).toHaveLength(2);
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toContain('--omit=dev');
    for (const entry of dockerfile.matchAll(/node apps\/(\w+)\/dist\/main\.js/g)) {
      expect(existsSync(root(`apps/${entry[1]}/src/main.ts`)), String(entry[0])).toBe(true);
    }
  });

  it('start every worker, and both commands, with the node flags crawlfleet is measured with', () => {
    const flags = NODE_FLAGS.join(' ');
    expect(flags).not.toBe('');
    const dockerfile = text('infra/Dockerfile');
    const cmd = /^CMD (\[.*\])$/m.exec(dockerfile)?.[1];
    expect((JSON.parse(cmd ?? '[]') as string[]).join(' ')).toBe(`node ${flags} apps/worker/dist/main.js`);
    const compose = parse(text('infra/docker-compose.yml')) as Doc;
    expect(compose.services.worker.command.join(' ')).toBe(`node ${flags} apps/worker/dist/main.js`);
    const [deployment] = parseAllDocuments(text('infra/k8s/worker.yaml')).map((d) => d.toJSON() as Doc);
    expect(deployment.spec.template.spec.containers[0].command.join(' ')).toBe(
      `node ${flags} apps/worker/dist/main.js`,
    );
    // The pod's memory limit leaves room above V8's old space (code, new space, buffers).
    const oldSpaceMib = Number(/--max-old-space-size=(\d+)/.exec(flags)?.[1]);
    const limit = String(deployment.spec.template.spec.containers[0].resources.limits.memory);
    const limitMib = Number.parseInt(limit, 10) * (limit.endsWith('Gi') ? 1024 : 1);
    expect(limit).toMatch(/^\d+(Mi|Gi)$/);
    expect(oldSpaceMib).toBeLessThanOrEqual(0.75 * limitMib);
    for (const bin of ['apps/cli/bin/crawlfleet.js', 'apps/worker/bin/crawlfleet-worker.js'])
      expect(text(bin).split('\n')[0], bin).toBe(`#!/usr/bin/env -S node ${flags}`);
  });

  it('compose a fleet whose settings are the ones the code reads', () => {
    const compose = parse(text('infra/docker-compose.yml')) as Doc;
    expect(Object.keys(compose.services).sort()).toEqual(['board', 'redis', 'worker']);
    const worker = compose.services.worker;
    for (const name of Object.keys(worker.environment)) expect(readByCode(name), name).toBe(true);
    expect(worker.healthcheck.test.join(' ')).toContain(`:${worker.environment.CRAWLFLEET_METRICS_PORT}/healthz`);
    expect(Number.parseInt(worker.stop_grace_period, 10) * 1000).toBeGreaterThan(
      Number(worker.environment.CRAWLFLEET_GRACE_MS),
    );
    for (const name of Object.keys(compose.services.board.environment)) expect(readByCode(name), name).toBe(true);
  });

  it('run workers on Kubernetes with /healthz probes on the metrics port and a grace period longer than the drain', () => {
    const [deployment, scaled] = parseAllDocuments(text('infra/k8s/worker.yaml')).map((d) => d.toJSON() as Doc);
    const spec = deployment.spec.template.spec;
    const container = spec.containers[0];
    const env = envOf(container);
    for (const name of Object.keys(env)) expect(readByCode(name), name).toBe(true);
    const metrics = container.ports.find((p: Doc) => p.name === 'metrics');
    expect(String(metrics.containerPort)).toBe(env.CRAWLFLEET_METRICS_PORT);
    for (const probe of [container.readinessProbe, container.livenessProbe]) {
      expect(probe.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    }
    expect(spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(Number(env.CRAWLFLEET_GRACE_MS));
    expect(deployment.spec.template.metadata.annotations['prometheus.io/port']).toBe(env.CRAWLFLEET_METRICS_PORT);

    expect(scaled.kind).toBe('ScaledObject');
    expect(scaled.spec.scaleTargetRef.name).toBe(deployment.metadata.name);
    // The KEDA redis scaler counts BullMQ's wait list of the crawl queue.
    expect(scaled.spec.triggers[0].metadata.listName).toBe(
      `${keyLayout(DEFAULT_PREFIX).bullPrefix}:${CRAWL_QUEUE}:wait`,
    );
  });

  it('run the board behind its own authentication, on the port its service names', () => {
    const [deployment, service] = parseAllDocuments(text('infra/k8s/board.yaml')).map((d) => d.toJSON() as Doc);
    const container = deployment.spec.template.spec.containers[0];
    const env = envOf(container);
    for (const name of container.env.map((e: Doc) => e.name)) expect(readByCode(name), name).toBe(true);
    expect(container.env.map((e: Doc) => e.name)).toEqual(
      expect.arrayContaining(['CRAWLFLEET_BOARD_USER', 'CRAWLFLEET_BOARD_PASSWORD']),
    );
    expect(String(container.ports[0].containerPort)).toBe(env.CRAWLFLEET_BOARD_PORT);
    expect(service.spec.ports[0].targetPort).toBe(container.ports[0].name);
  });
});
