import calculateSlot from 'cluster-key-slot';

/** The BullMQ queues of the design: HTTP jobs, render jobs (browser workers only), dead letters. */
export const CRAWL_QUEUE = 'crawl';
export const RENDER_QUEUE = 'crawl-render';
export const DLQ_QUEUE = 'crawl-dlq';

/** The queue a job goes to: render jobs to the browser workers' own. */
export function queueOf(job: { render?: true | undefined }): typeof CRAWL_QUEUE | typeof RENDER_QUEUE {
  return job.render === true ? RENDER_QUEUE : CRAWL_QUEUE;
}

/**
 * Every Redis key crawlfleet owns, in one place. Fleet-wide keys (both queues, the results
 * stream, the ledger) share the hash tag `{prefix}`, so BullMQ's multi-key scripts and our
 * result+ledger script stay in one Redis Cluster slot. Session keys (see the slates package)
 * carry a hash tag per session instead, so sessions spread over the cluster.
 */
export interface KeyLayout {
  /** The configured prefix, `cf` by default (`CRAWLFLEET_PREFIX`). */
  readonly prefix: string;
  /**
   * The `prefix` option of the fleet-wide BullMQ queue (the DLQ) on the fleet tag `{prefix}`. The
   * crawl and render queues are per shard (`shards[i].bullPrefix`).
   */
  readonly bullPrefix: string;
  /**
   * The shards the job path is spread over (`queue.shards`): each its own hash tag, with its own
   * crawl and render queues, results outbox, ledger and frontier. One shard (the default) is the
   * fleet tag itself, so a fleet of one shard keeps the keys it always had.
   */
  readonly shards: readonly ShardKeys[];
  /** The shard of an idempotency key (also a job id): where its job, ledger mark and result go. */
  shardOf(idempotencyKey: string): ShardKeys;
  /** A proxy's recent failures (`scheme://host:port`), counted fleet-wide in a short window. */
  proxyFailures(proxy: string): string;
  /** The blocked answers (403, 429) the sites sent through a proxy, counted fleet-wide in a short window. */
  proxyBlocks(proxy: string): string;
  /** Set while a proxy is down for the whole fleet: its sessions move to another. */
  proxyDown(proxy: string): string;
  /** A live sink consumer's heartbeat (`<group>/<consumer>`), expiring when it dies. */
  sinkConsumer(group: string, consumer: string): string;
  /** The audit stream: retries, DLQ moves, quarantines, breaker transitions. */
  readonly audit: string;
  /** The installation's key for hashing session ids in logs and audit events. */
  readonly sessionHashKey: string;
  /**
   * On the session Redis: a value sealed with the fleet's key ring, so a process can tell at
   * start whether its ring opens the fleet's sessions.
   */
  readonly keyCheck: string;
  /** A host's next-allowed request time, shared by the fleet (on the shard of the host). */
  host(host: string): string;
  /** An origin's cached robots.txt (on the shard of the origin). */
  robots(origin: string): string;
  /** The ledger entry that marks an idempotency key as finished (on the key's shard). */
  ledger(idempotencyKey: string): string;
  /** BullMQ's hash for a job of the crawl queue (`<shard bullPrefix>:crawl:<id>`). */
  crawlJob(jobId: string): string;
  /** BullMQ's hash for a job of the render queue (`<shard bullPrefix>:crawl-render:<id>`). */
  renderJob(jobId: string): string;
  /** Set once to the fleet's shard count: a process configured with another is refused. */
  readonly shardCount: string;
  /** Every named crawl, scored by when it started. */
  readonly crawls: string;
  /** A named crawl: its definition, state and counts (a hash). */
  crawl(name: string): string;
  /** The idempotency keys a named crawl has admitted to its frontier (seeds and links), once each. */
  crawlSeen(name: string): string;
  /**
   * With more than one shard: what a named crawl's link admissions answered, by the frontier
   * entry that asked (a hash), so a mover that asks again after a crash gets the same answer.
   */
  crawlReceipts(name: string): string;
  /**
   * The receipts whose entries are enqueued and acknowledged, by when (a sorted set): they are
   * deleted a grace period later, not at once, so a mover that claimed the entry meanwhile still
   * gets the same answer.
   */
  crawlForgotten(name: string): string;
  /** The keys of one session's slates (see `SessionKeys`). */
  session(tenant: string, sessionId: string): SessionKeys;
  /**
   * The SCAN pattern matching every slate key of every session: only for the one-time indexing
   * of sessions written before the session registry existed.
   */
  readonly sessionPattern: string;
  /**
   * On the session Redis: every session, as a sorted set of `tenant/session` scored by when a
   * worker last registered it, so listing, purging and key rotation never scan the keyspace.
   */
  readonly sessionRegistry: string;
  /** On the session Redis: set once sessions written before the registry have been indexed. */
  readonly sessionsIndexed: string;
  /** BullMQ's hash for the DLQ entry of a job (`<bullPrefix>:crawl-dlq:<dlqJobId(id)>`). */
  dlqJob(jobId: string): string;
}

/**
 * The keys of one shard of the job path. They share the shard's hash tag, so BullMQ's scripts for
 * its queues and the result write (outbox, ledger, frontier) each stay in one cluster slot.
 */
export interface ShardKeys {
  /** 0 to shards - 1. */
  readonly index: number;
  /** The hash tag, braces included: `{prefix}` for a fleet of one shard, else `{prefix:<i>...}`. */
  readonly tag: string;
  /** The `prefix` option of this shard's crawl and render queues (its tag). */
  readonly bullPrefix: string;
  /** The results outbox: a stream read by sinks (one consumer group each) and `results export`. */
  readonly results: string;
  /** The bytes of the results the outbox holds (kept by the scripts that add and trim it). */
  readonly resultsBytes: string;
  /** Each outbox entry's size, under the entry's id: what a trim counts off without reading results. */
  readonly resultsSizes: string;
  /** Results written in one 10 s span (`span` = ms since the epoch / 10,000), kept 3 minutes. */
  resultsRate(span: number): string;
  /**
   * Links admitted by result writes, waiting to be enqueued (a stream; workers move them, consumer
   * group `movers`). With more than one shard it also holds a page's links still to be admitted.
   */
  readonly frontier: string;
  /**
   * A named crawl's counts of the pages (and records) stored on this shard: its result writes keep
   * them here, beside the outbox. With one shard this is the crawl's own hash (`crawl(name)`).
   */
  crawlCounts(name: string): string;
}

/** The Redis Cluster slot of a key (CRC16 of its hash tag, or of the whole key without one). */
export function slotOf(key: string): number {
  return calculateSlot(key);
}

/** The most shards a fleet can have (`queue.shards`). */
export const MAX_SHARDS = 64;

/**
 * The hash tag of shard `index` of `count`. One shard is the fleet tag `{prefix}`. With more, shard
 * i's tag hashes into the i-th of `count` equal parts of the 16,384 slots (the smallest suffix that
 * does), so on a cluster whose masters hold equal runs of slots, as `redis-cli --cluster create`
 * deals them, as many shards as masters put one shard on each master.
 */
export function shardTag(prefix: string, index: number, count: number): string {
  if (count === 1) return `{${prefix}}`;
  const low = Math.ceil((index * SLOTS) / count);
  const high = Math.ceil(((index + 1) * SLOTS) / count);
  for (let suffix = 0; suffix < 100_000; suffix++) {
    const tag = suffix === 0 ? `${prefix}:${index}` : `${prefix}:${index}.${suffix}`;
    const slot = slotOf(tag);
    if (slot >= low && slot < high) return `{${tag}}`;
  }
  return `{${prefix}:${index}}`;
}

const SLOTS = 16_384;

function shardKeys(prefix: string, index: number, count: number): ShardKeys {
  const tag = shardTag(prefix, index, count);
  return {
    index,
    tag,
    bullPrefix: tag,
    results: `${tag}:results`,
    resultsBytes: `${tag}:results:bytes`,
    resultsSizes: `${tag}:results:sizes`,
    resultsRate: (span) => `${tag}:results:rate:${span}`,
    frontier: `${tag}:frontier`,
    crawlCounts: (name) => `${tag}:crawls:${name}`,
  };
}

/**
 * The DLQ job id of a dead letter. It is the original job's id, except that an all-digit id
 * (BullMQ's own ids, for jobs added without one) gets a `job-` prefix: BullMQ refuses custom ids
 * that are integers.
 */
export function dlqJobId(originalId: string): string {
  return /^\d+$/.test(originalId) ? `job-${originalId}` : originalId;
}

/**
 * The keys of one session. Every key carries the hash tag `{tenant/session}`, so a commit of
 * several slates is one atomic script on one Redis Cluster slot, and sessions spread over slots.
 */
export interface SessionKeys {
  readonly tenant: string;
  readonly sessionId: string;
  /** `<prefix>:session:{tenant/session}`; every slate key starts with it. */
  readonly base: string;
  /** The key of a slate: `cookies`, `auth`, `profile`, `meta`, `workflow:<name>`. */
  slate(name: string): string;
  /** The session's index: the names of the slates it holds (admin operations never scan). */
  readonly index: string;
  /** The short lease one worker holds while it logs this session in again. */
  readonly authLease: string;
  /** Set (with a TTL) while the session is quarantined after a compliance block. */
  readonly quarantine: string;
  /** Counts this session's recent 429 answers. */
  readonly rateLimited: string;
  /** While set, the session's breaker is open until the time it holds (ms since the epoch). */
  readonly breaker: string;
  /** The one half-open probe of an open breaker, across the fleet. */
  readonly breakerProbe: string;
}

/** Reads tenant and session back from a session key (for listing); undefined when not one. */
export function parseSessionKey(
  prefix: string,
  key: string,
): { tenant: string; sessionId: string; slate: string } | undefined {
  const head = `${prefix}:session:{`;
  if (!key.startsWith(head)) return undefined;
  const close = key.indexOf('}', head.length);
  const tag = key.slice(head.length, close);
  const slash = tag.indexOf('/');
  if (close === -1 || slash === -1 || key[close + 1] !== ':') return undefined;
  return { tenant: tag.slice(0, slash), sessionId: tag.slice(slash + 1), slate: key.slice(close + 2) };
}

const PREFIX_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

export function isValidPrefix(prefix: string): boolean {
  return PREFIX_PATTERN.test(prefix);
}

/** Session key sets a layout keeps, so a busy session's keys are built once, not per job. */
const SESSION_KEYS_KEPT = 4096;

function sessionKeys(prefix: string, tenant: string, sessionId: string): SessionKeys {
  const base = `${prefix}:session:{${tenant}/${sessionId}}`;
  const slates = new Map<string, string>();
  return {
    tenant,
    sessionId,
    base,
    slate: (name) => {
      let key = slates.get(name);
      if (key === undefined) {
        key = `${base}:${name}`;
        // Workflow names come from job code: keep the common slates, not every name ever used.
        if (slates.size < 16) slates.set(name, key);
      }
      return key;
    },
    index: `${base}:index`,
    authLease: `${base}:lease:auth`,
    quarantine: `${base}:flag:quarantine`,
    rateLimited: `${base}:flag:429`,
    breaker: `${base}:flag:breaker`,
    breakerProbe: `${base}:flag:probe`,
  };
}

/**
 * The key layout of a fleet: its prefix and its number of shards (`queue.shards`, 1 by default).
 * An idempotency key's shard is its slot (CRC16, as Redis Cluster's) modulo the shard count: even
 * over the shards whatever the hosts, and the same for a key wherever it is computed.
 */
export function keyLayout(prefix: string, shards = 1): KeyLayout {
  if (!Number.isInteger(shards) || shards < 1 || shards > MAX_SHARDS) {
    throw new RangeError(`shards must be a whole number from 1 to ${MAX_SHARDS}, got ${shards}`);
  }
  const tag = `{${prefix}}`;
  const sessions = new Map<string, SessionKeys>();
  const all = Array.from({ length: shards }, (_, index) => shardKeys(prefix, index, shards));
  const only = all[0] as ShardKeys;
  const shardOf = shards === 1 ? () => only : (key: string) => all[slotOf(key) % shards] as ShardKeys;
  return {
    prefix,
    bullPrefix: tag,
    shards: all,
    shardOf,
    shardCount: `${tag}:shards`,
    proxyFailures: (proxy) => `${tag}:proxy:${proxy}:failures`,
    proxyBlocks: (proxy) => `${tag}:proxy:${proxy}:blocks`,
    proxyDown: (proxy) => `${tag}:proxy:${proxy}:down`,
    sinkConsumer: (group, consumer) => `${tag}:sink:${group}:${consumer}`,
    audit: `${tag}:audit`,
    sessionHashKey: `${tag}:session-hash-key`,
    keyCheck: `${tag}:session-key-check`,
    host: (host) => `${shardOf(host).tag}:host:${host}`,
    robots: (origin) => `${shardOf(origin).tag}:robots:${origin}`,
    ledger: (idempotencyKey) => `${shardOf(idempotencyKey).tag}:ledger:${idempotencyKey}`,
    crawlJob: (jobId) => `${shardOf(jobId).tag}:${CRAWL_QUEUE}:${jobId}`,
    renderJob: (jobId) => `${shardOf(jobId).tag}:${RENDER_QUEUE}:${jobId}`,
    // `crawls`, not `crawl`: BullMQ's keys of the crawl queue are `{prefix}:crawl:*`.
    crawls: `${tag}:crawls`,
    crawl: (name) => `${tag}:crawls:${name}`,
    crawlSeen: (name) => `${tag}:crawls:${name}:seen`,
    crawlReceipts: (name) => `${tag}:crawls:${name}:receipts`,
    crawlForgotten: (name) => `${tag}:crawls:${name}:forgotten`,
    session: (tenant, sessionId) => {
      const id = `${tenant}/${sessionId}`;
      let keys = sessions.get(id);
      if (keys === undefined) {
        keys = sessionKeys(prefix, tenant, sessionId);
        if (sessions.size >= SESSION_KEYS_KEPT) sessions.clear();
        sessions.set(id, keys);
      }
      return keys;
    },
    sessionPattern: `${prefix}:session:{*}:*`,
    sessionRegistry: `${tag}:sessions`,
    sessionsIndexed: `${tag}:sessions-indexed`,
    dlqJob: (jobId) => `${tag}:${DLQ_QUEUE}:${dlqJobId(jobId)}`,
  };
}
