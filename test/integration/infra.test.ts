import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CRAWL_QUEUE, DEFAULT_PREFIX, keyLayout, NODE_FLAGS, parseConfig, RENDER_QUEUE } from '@crawlfleet/core';
import { DEFAULT_GRACE_MS } from '@crawlfleet/crawler';
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

/**
 * Every environment variable a browser worker reads: it runs `crawlfleet worker` (the bare worker
 * entry has no --browsers), so its settings must be ones that command reads.
 */
const browserWorkerSources = [
  'apps/cli/src/commands/worker.ts',
  'packages/core/src/environment.ts',
  'packages/core/src/config.ts',
  'packages/slates/src/key-source.ts',
  'packages/browser/src/chromium.ts',
]
  .map(text)
  .join('\n');
const readByBrowserWorker = (name: string) => browserWorkerSources.includes(name);

/** A Kubernetes memory quantity (Mi or Gi) in MiB. */
const mib = (quantity: string) => {
  expect(quantity).toMatch(/^\d+(Mi|Gi)$/);
  return Number.parseInt(quantity, 10) * (quantity.endsWith('Gi') ? 1024 : 1);
};

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
    const stages = [...dockerfile.matchAll(/^FROM (\S+)(?: AS (\S+))?$/gm)].map(([, from, name]) => ({ from, name }));
    expect(stages.map((stage) => stage.name)).toEqual(['build', 'runtime', 'browser-worker', undefined]);
    expect(stages[2]?.from).toBe('runtime');
    // A build without --target gives the last stage: the runtime image as it is, without Chromium.
    expect(stages[3]?.from).toBe('runtime');
    const afterLastFrom = dockerfile
      .slice(dockerfile.lastIndexOf('\nFROM ') + 1)
      .split('\n')
      .slice(1);
    expect(afterLastFrom.filter((line) => line.trim() !== '' && !line.startsWith('#'))).toEqual([]);
    // The browser stage installs as root and then runs as node again, like the runtime stage.
    expect([...dockerfile.matchAll(/^USER (\S+)$/gm)].map((m) => m[1])).toEqual(['node', 'root', 'node']);
    expect(dockerfile).toContain('--omit=dev');
    for (const entry of dockerfile.matchAll(/node apps\/(\w+)\/dist\/main\.js/g)) {
      expect(existsSync(root(`apps/${entry[1]}/src/main.ts`)), String(entry[0])).toBe(true);
    }
  });

  it('start every worker, and both commands, with the node flags crawlfleet is measured with', () => {
    const flags = NODE_FLAGS.join(' ');
    expect(flags).not.toBe('');
    const dockerfile = text('infra/Dockerfile');
    const cmds = [...dockerfile.matchAll(/^CMD (\[.*\])$/gm)].map((m) =>
      (JSON.parse(String(m[1])) as string[]).join(' '),
    );
    // The runtime stage's worker, then the browser-worker stage's `crawlfleet worker`.
    expect(cmds).toEqual([`node ${flags} apps/worker/dist/main.js`, `node ${flags} apps/cli/dist/main.js worker`]);
    const compose = parse(text('infra/docker-compose.yml')) as Doc;
    expect(compose.services.worker.command.join(' ')).toBe(`node ${flags} apps/worker/dist/main.js`);
    expect(compose.services['browser-worker'].command.join(' ')).toBe(`node ${flags} apps/cli/dist/main.js worker`);
    const [deployment] = parseAllDocuments(text('infra/k8s/worker.yaml')).map((d) => d.toJSON() as Doc);
    expect(deployment.spec.template.spec.containers[0].command.join(' ')).toBe(
      `node ${flags} apps/worker/dist/main.js`,
    );
    const [browsers] = parseAllDocuments(text('infra/k8s/browser-worker.yaml')).map((d) => d.toJSON() as Doc);
    expect(browsers.spec.template.spec.containers[0].command.join(' ')).toBe(
      `node ${flags} apps/cli/dist/main.js worker`,
    );
    // The pod's memory limit leaves room above V8's old space (code, new space, buffers).
    const oldSpaceMib = Number(/--max-old-space-size=(\d+)/.exec(flags)?.[1]);
    const limitMib = mib(String(deployment.spec.template.spec.containers[0].resources.limits.memory));
    expect(oldSpaceMib).toBeLessThanOrEqual(0.75 * limitMib);
    // A browser worker's limit holds as much for Node, plus Chromium up to the ceiling it is replaced above.
    const browserLimitMib = mib(String(browsers.spec.template.spec.containers[0].resources.limits.memory));
    expect(browserLimitMib).toBeGreaterThan(oldSpaceMib / 0.75 + parseConfig({}).render.maxBrowserMemoryMb);
    for (const bin of ['apps/cli/bin/crawlfleet.js', 'apps/worker/bin/crawlfleet-worker.js'])
      expect(text(bin).split('\n')[0], bin).toBe(`#!/usr/bin/env -S node ${flags}`);
  });

  it('compose a fleet whose settings are the ones the code reads', () => {
    const compose = parse(text('infra/docker-compose.yml')) as Doc;
    expect(Object.keys(compose.services).sort()).toEqual(['board', 'browser-worker', 'redis', 'worker']);
    const worker = compose.services.worker;
    for (const name of Object.keys(worker.environment)) expect(readByCode(name), name).toBe(true);
    expect(worker.healthcheck.test.join(' ')).toContain(`:${worker.environment.CRAWLFLEET_METRICS_PORT}/healthz`);
    expect(Number.parseInt(worker.stop_grace_period, 10) * 1000).toBeGreaterThan(
      Number(worker.environment.CRAWLFLEET_GRACE_MS),
    );
    for (const name of Object.keys(compose.services.board.environment)) expect(readByCode(name), name).toBe(true);
  });

  it("compose a browser worker from the Dockerfile's browser-worker stage, with the settings `crawlfleet worker` reads", () => {
    const compose = parse(text('infra/docker-compose.yml')) as Doc;
    const browsers = compose.services['browser-worker'];
    expect(text('infra/Dockerfile')).toMatch(new RegExp(`^FROM \\S+ AS ${browsers.build.target}$`, 'm'));
    expect(browsers.image).not.toBe(compose.services.worker.image);
    for (const name of Object.keys(browsers.environment)) expect(readByBrowserWorker(name), name).toBe(true);
    expect(Number(browsers.environment.CRAWLFLEET_BROWSERS)).toBeGreaterThan(0);
    expect(browsers.healthcheck.test.join(' ')).toContain(`:${browsers.environment.CRAWLFLEET_METRICS_PORT}/healthz`);
    expect(Number.parseInt(browsers.stop_grace_period, 10) * 1000).toBeGreaterThan(DEFAULT_GRACE_MS);
    // Chromium's sandbox (user namespaces) under a non-root user, which Docker's default profile refuses.
    expect(browsers.security_opt).toEqual(['seccomp=unconfined']);
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

  it('scale workers and browser workers of a 3-shard fleet on a Redis Cluster with one KEDA trigger per shard', () => {
    const scalers = [
      ...parseAllDocuments(text('infra/k8s/worker.yaml')),
      ...parseAllDocuments(text('infra/k8s/browser-worker.yaml')),
    ]
      .map((d) => d.toJSON() as Doc)
      .filter((d) => d.kind === 'ScaledObject');
    const sharded = parseAllDocuments(text('infra/k8s/scalers-3-shards.yaml')).map((d) => d.toJSON() as Doc);
    // They replace the one-shard ScaledObjects, for the same deployments.
    expect(sharded.map((scaled) => scaled.metadata.name)).toEqual(scalers.map((scaled) => scaled.metadata.name));
    const shards = keyLayout(DEFAULT_PREFIX, 3).shards;
    for (const [i, queue] of [CRAWL_QUEUE, RENDER_QUEUE].entries()) {
      const scaled = sharded[i] as Doc;
      expect(scaled.spec.scaleTargetRef).toEqual((scalers[i] as Doc).spec.scaleTargetRef);
      expect(scaled.spec.triggers.map((trigger: Doc) => trigger.type)).toEqual(shards.map(() => 'redis-cluster'));
      expect(scaled.spec.triggers.map((trigger: Doc) => trigger.metadata.listName)).toEqual(
        shards.map((shard) => `${shard.bullPrefix}:${queue}:wait`),
      );
    }
  });

  it('run browser workers on Kubernetes: render jobs only, scaled by KEDA on the crawl-render wait list', () => {
    const [deployment, scaled] = parseAllDocuments(text('infra/k8s/browser-worker.yaml')).map((d) => d.toJSON() as Doc);
    const spec = deployment.spec.template.spec;
    const container = spec.containers[0];
    const env = envOf(container);
    for (const name of Object.keys(env)) expect(readByBrowserWorker(name), name).toBe(true);
    expect(Number(env.CRAWLFLEET_BROWSERS)).toBeGreaterThan(0);
    const metrics = container.ports.find((p: Doc) => p.name === 'metrics');
    expect(String(metrics.containerPort)).toBe(env.CRAWLFLEET_METRICS_PORT);
    for (const probe of [container.readinessProbe, container.livenessProbe]) {
      expect(probe.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    }
    expect(spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(DEFAULT_GRACE_MS);
    expect(deployment.spec.template.metadata.annotations['prometheus.io/port']).toBe(env.CRAWLFLEET_METRICS_PORT);
    expect(spec.securityContext.runAsNonRoot).toBe(true);
    expect(container.securityContext.seccompProfile).toEqual({ type: 'Unconfined' });
    // Not the HTTP workers' pods: their own selector, so neither Deployment adopts the other's.
    const [http] = parseAllDocuments(text('infra/k8s/worker.yaml')).map((d) => d.toJSON() as Doc);
    expect(deployment.spec.selector.matchLabels).not.toEqual(http.spec.selector.matchLabels);

    expect(scaled.kind).toBe('ScaledObject');
    expect(scaled.spec.scaleTargetRef.name).toBe(deployment.metadata.name);
    expect(scaled.spec.minReplicaCount).toBeGreaterThanOrEqual(1);
    expect(scaled.spec.triggers[0].metadata.listName).toBe(
      `${keyLayout(DEFAULT_PREFIX).bullPrefix}:${RENDER_QUEUE}:wait`,
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
