import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { findOnPath, type RedisServer, startRedisServer } from '@crawlfleet/local-redis';
import { Redis } from 'ioredis';

const run = promisify(execFile);

/** One `redis-server` of a test cluster, and what the cluster says it is now. */
export interface ClusterNode {
  readonly server: RedisServer;
  readonly port: number;
  /** `master` or `slave`, as `ROLE` answers now (a replica becomes a master when its master fails). */
  role(): Promise<'master' | 'slave' | 'down'>;
}

/** A Redis Cluster of real `redis-server` processes on loopback, each in its own temp dir. */
export interface RedisCluster {
  readonly nodes: readonly ClusterNode[];
  /** `redis+cluster://127.0.0.1:p1,127.0.0.1:p2,...`: every node, as crawlfleet is given a cluster. */
  readonly url: string;
  /** The nodes that are masters now. */
  masters(): Promise<ClusterNode[]>;
  /** Kills a node's process at once (SIGKILL), as a machine that dies. */
  kill(node: ClusterNode): Promise<void>;
  /** Waits until every slot is served and the cluster says `cluster_state:ok` on every live node. */
  healthy(timeoutMs?: number): Promise<void>;
  /** After a kill: waits until a replica took the dead master's place (as many masters as at start) and the cluster is healthy. */
  recovered(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

async function ask(port: number, ...args: string[]): Promise<unknown> {
  const redis = new Redis({
    port,
    host: '127.0.0.1',
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  redis.on('error', () => {});
  try {
    await redis.connect();
    return await redis.call(args[0] as string, ...args.slice(1));
  } finally {
    redis.disconnect();
  }
}

/**
 * Starts `masters` x (1 + `replicas`) `redis-server` processes in cluster mode and joins them with
 * `redis-cli --cluster create` (each master with its replicas, slots spread evenly), with a short
 * node timeout so a killed master's replica takes over within seconds.
 */
export async function startRedisCluster(options: { masters?: number; replicas?: number } = {}): Promise<RedisCluster> {
  const masters = options.masters ?? 3;
  const replicas = options.replicas ?? 1;
  const cli = findOnPath('redis-cli');
  if (cli === undefined) throw new Error('redis-cli is not on PATH');
  const servers: RedisServer[] = [];
  try {
    for (let i = 0; i < masters * (1 + replicas); i++)
      servers.push(
        await startRedisServer({
          args: [
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            'nodes.conf',
            '--cluster-node-timeout',
            '2000',
            '--appendonly',
            'no',
          ],
        }),
      );
    await run(
      cli,
      [
        '--cluster',
        'create',
        ...servers.map((server) => `127.0.0.1:${server.port}`),
        '--cluster-replicas',
        String(replicas),
        '--cluster-yes',
      ],
      { timeout: 30_000 },
    );
  } catch (error) {
    await Promise.all(servers.map((server) => server.stop()));
    throw error;
  }
  const killed = new Set<number>();
  const nodes: ClusterNode[] = servers.map((server) => ({
    server,
    port: server.port,
    async role() {
      if (killed.has(server.port)) return 'down';
      try {
        const answer = (await ask(server.port, 'ROLE')) as [string, ...unknown[]];
        return answer[0] === 'master' ? 'master' : 'slave';
      } catch {
        return 'down';
      }
    },
  }));
  const cluster: RedisCluster = {
    nodes,
    url: `redis+cluster://${servers.map((server) => `127.0.0.1:${server.port}`).join(',')}`,
    async masters() {
      const roles = await Promise.all(nodes.map((node) => node.role()));
      return nodes.filter((_, i) => roles[i] === 'master');
    },
    async kill(node) {
      killed.add(node.port);
      await node.server.stop({ signal: 'SIGKILL' });
    },
    async healthy(timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const live = nodes.filter((node) => !killed.has(node.port));
        const states = await Promise.all(live.map((node) => ask(node.port, 'CLUSTER', 'INFO').catch(() => '')));
        if (states.every((info) => String(info).includes('cluster_state:ok'))) return;
        if (Date.now() > deadline) throw new Error(`the test cluster is not healthy after ${timeoutMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    async recovered(timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while ((await cluster.masters()).length < masters) {
        if (Date.now() > deadline) throw new Error(`no replica took over within ${timeoutMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await cluster.healthy(Math.max(1_000, deadline - Date.now()));
    },
    async stop() {
      await Promise.all(servers.map((server) => server.stop()));
    },
  };
  await cluster.healthy();
  // redis-cli returns once the nodes have joined; each replica then connects to its master.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const roles = await Promise.all(servers.map((server) => ask(server.port, 'ROLE').catch(() => undefined)));
    const masterCount = roles.filter((role) => (role as unknown[] | undefined)?.[0] === 'master').length;
    const synced = roles.filter(
      (role) => (role as unknown[] | undefined)?.[0] === 'slave' && (role as unknown[])[3] === 'connected',
    ).length;
    if (masterCount === masters && synced === masters * replicas) break;
    if (Date.now() > deadline) {
      await cluster.stop();
      throw new Error(
        `the test cluster's replicas did not connect (${masterCount} masters, ${synced} replicas in sync)`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return cluster;
}
