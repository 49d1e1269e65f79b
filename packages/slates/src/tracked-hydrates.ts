import type { SessionKeys } from '@crawlfleet/core';
import { type Redis, ReplyError } from 'ioredis';

/** The pub/sub channel Redis sends client-side caching invalidations to (RESP2 redirect mode). */
const INVALIDATE_CHANNEL = '__redis__:invalidate';

/** What a hydrate gave, kept for the session's next jobs while nothing it read has changed. */
export interface TrackedAnswer<T> {
  /** Every key the hydrate read: the slates, the quarantine flag, the breaker flag. */
  readonly keys: readonly string[];
  readonly value: T;
  readonly storedAt: number;
  /** The last of this worker's own writes the answer reflects (`writing`). */
  readonly seq: number;
}

/** Taken before a hydrate is sent; decides whether its answer may be kept. */
export interface ReadTicket {
  readonly session: string;
  readonly keys: readonly string[];
  readonly epoch: number;
  /** This worker's own writes sent before the read: the read reflects them, and no later one. */
  readonly seq: number;
}

export interface TrackedHydratesOptions {
  /** Sessions kept; the oldest goes first. Default 4096. */
  capacity?: number;
  /**
   * The longest an answer is reused, whatever Redis says. It bounds how long a slate that expired
   * (Redis expires keys lazily, and may tell of it late) can still be used. Default 30 s.
   */
  maxAgeMs?: number;
  /**
   * How often the subscriber is pinged. Redis tells no one (in RESP2) when it drops a redirect
   * target, and a subscriber that only receives can die silently (a NAT's idle timeout, a
   * half-open socket); a ping unanswered within this long (2 s at most) drops every answer and
   * reconnects it. Default 5 s.
   */
  pingMs?: number;
  /** Told once when Redis refuses tracking (before 6.0, or a proxy without it); never throws. */
  onUnavailable?: (reason: string) => void;
}

/** Answers Redis gives when it will never track: no CLIENT command, or not allowed to use it. */
const REFUSALS = /unknown command|unknown subcommand|NOPERM/i;

/**
 * Hydrate answers this worker reuses without asking Redis, kept true by Redis's server-assisted
 * client-side caching. The session connection reads with `CLIENT TRACKING ON REDIRECT <id>`, so
 * Redis remembers which session keys this worker read and, the moment any of them changes (a
 * commit, a quarantine, a breaker opening, a purge, from any worker or command), publishes the
 * key's name on a second connection subscribed to `__redis__:invalidate`. The answer that read
 * the key is dropped, and the session's next job reads Redis again.
 *
 * Only answers of healthy sessions are kept: not quarantined, breaker not set, every slate opened.
 * Everything that could leave a stale answer drops them all: either connection closing (Redis
 * forgets the tracking, or has nowhere to send invalidations), or a flush. An invalidation that
 * arrives while a read of the same key is in flight spoils that read's answer, whichever of the two
 * replies arrives first. Redis does not echo this worker's own writes (NOLOOP): each one is applied
 * to the kept answer when its reply arrives (`writing`, `wrote`), or drops it (`forget`).
 */
export class TrackedHydrates<T> {
  private readonly answers = new Map<string, TrackedAnswer<T>>();
  /** Session (its base key) of each key read by a kept answer. */
  private readonly sessionOfKey = new Map<string, string>();
  /** Keys read by hydrates in flight, with how many; and those changed while in flight. */
  private readonly inFlight = new Map<string, number>();
  private readonly spoiled = new Set<string>();
  /** The same by session (its base key), for this worker's own writes. */
  private readonly sessionsInFlight = new Map<string, number>();
  private readonly spoiledSessions = new Set<string>();
  /** This worker's own writes, numbered as they are sent. */
  private writeSeq = 0;
  /**
   * Own writes of a session applied while reads of it were in flight: a read sent before such a
   * write, whose answer is kept after the write's reply was handled, gets them applied too.
   */
  private readonly appliedWhileReading = new Map<string, Array<{ seq: number; update: (kept: T) => T | undefined }>>();
  /** Bumped whenever tracking stops or restarts: answers read in an older epoch are not kept. */
  private epoch = 0;
  private tracking = false;
  private closed = false;
  /** The subscriber's client id on its current connection, once it is subscribed. */
  private subscriberId: number | undefined;
  /** Bumped whenever the subscriber's connection is lost: a subscription in progress is void. */
  private subscriberGeneration = 0;
  /** The same for the session connection: tracking being turned on for an older one is void. */
  private sessionGeneration = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly pingTimer: NodeJS.Timeout;
  private readonly pingMs: number;
  private readonly capacity: number;
  private readonly maxAgeMs: number;
  /** Told of every invalidation: a key, or undefined for all (a flush, tracking stopped). */
  private readonly listeners: Array<(key: string | undefined) => void> = [];
  /** Hydrates answered here, and answers dropped by an invalidation (for tests and logs). */
  readonly counters = { hits: 0, invalidations: 0, flushes: 0 };

  private constructor(
    private readonly redis: Redis,
    private readonly subscriber: Redis,
    private readonly options: TrackedHydratesOptions,
  ) {
    this.capacity = options.capacity ?? 4096;
    this.maxAgeMs = options.maxAgeMs ?? 30_000;
    this.pingMs = options.pingMs ?? 5_000;
    this.pingTimer = setInterval(() => void this.checkSubscriber(), this.pingMs);
    this.pingTimer.unref();
  }

  /**
   * Starts tracking on `redis` (the session connection: every key it reads is a session key) with
   * a subscriber of its own. Returns at once; answers are kept from the moment both connections are
   * ready and Redis has accepted the tracking, and again after every reconnect.
   */
  static start<T>(redis: Redis, options: TrackedHydratesOptions = {}): TrackedHydrates<T> {
    // Its own subscriptions are made on every connect (after CLIENT ID, which a connection in
    // subscriber mode may not send), so ioredis must not resubscribe by itself.
    const subscriber = redis.duplicate({
      enableOfflineQueue: true,
      maxRetriesPerRequest: null,
      autoResubscribe: false,
      lazyConnect: true,
    });
    subscriber.on('error', () => {});
    const tracked = new TrackedHydrates<T>(redis, subscriber, options);
    subscriber.on('messageBuffer', (channel: Buffer, message: unknown) => {
      if (channel.toString() === INVALIDATE_CHANNEL) tracked.invalidated(message);
    });
    subscriber.on('ready', () => void tracked.subscribe());
    redis.on('ready', () => {
      tracked.stop(false);
      void tracked.enable();
    });
    for (const connection of [redis, subscriber]) {
      connection.on('close', () => tracked.stop(connection === subscriber));
      connection.on('end', () => tracked.stop(connection === subscriber));
    }
    subscriber.connect().catch(() => {});
    return tracked;
  }

  /** Whether answers are being kept now. */
  get active(): boolean {
    return this.tracking;
  }

  /** The subscriber's client id while it is subscribed (what `CLIENT TRACKING` redirects to). */
  get invalidationClientId(): number | undefined {
    return this.subscriberId;
  }

  get size(): number {
    return this.answers.size;
  }

  /** The kept answer for `session`, if any and not too old. */
  get(session: SessionKeys): T | undefined {
    if (!this.tracking) return undefined;
    const answer = this.answers.get(session.base);
    if (answer === undefined) return undefined;
    if (performance.now() - answer.storedAt > this.maxAgeMs) {
      this.drop(session.base);
      return undefined;
    }
    this.counters.hits++;
    return answer.value;
  }

  /** Call before sending a hydrate of `keys`; pass the ticket to `keep` or `release` after. */
  reading(session: SessionKeys, keys: readonly string[]): ReadTicket {
    for (const key of keys) this.inFlight.set(key, (this.inFlight.get(key) ?? 0) + 1);
    this.sessionsInFlight.set(session.base, (this.sessionsInFlight.get(session.base) ?? 0) + 1);
    return { session: session.base, keys, epoch: this.epoch, seq: this.writeSeq };
  }

  /** Keeps a hydrate's answer unless tracking restarted or a key it read changed meanwhile. */
  keep(ticket: ReadTicket, value: T): void {
    const fresh =
      this.tracking &&
      ticket.epoch === this.epoch &&
      !this.spoiledSessions.has(ticket.session) &&
      !ticket.keys.some((key) => this.spoiled.has(key));
    // Own writes sent after this read whose replies were handled first: applied here as well.
    let kept: T | undefined = value;
    let seq = ticket.seq;
    for (const applied of this.appliedWhileReading.get(ticket.session) ?? []) {
      if (applied.seq <= ticket.seq || kept === undefined) continue;
      kept = applied.update(kept);
      seq = applied.seq;
    }
    this.release(ticket);
    if (!fresh || kept === undefined || this.capacity <= 0) return;
    this.drop(ticket.session);
    this.answers.set(ticket.session, { keys: ticket.keys, value: kept, storedAt: performance.now(), seq });
    for (const key of ticket.keys) this.sessionOfKey.set(key, ticket.session);
    if (this.answers.size > this.capacity) {
      const [oldest] = this.answers.keys();
      if (oldest !== undefined) this.drop(oldest);
    }
  }

  /** Ends a hydrate whose answer is not kept (it failed, or is not of a healthy session). */
  release(ticket: ReadTicket): void {
    for (const key of ticket.keys) {
      const count = (this.inFlight.get(key) ?? 1) - 1;
      if (count > 0) this.inFlight.set(key, count);
      else {
        this.inFlight.delete(key);
        this.spoiled.delete(key);
      }
    }
    const count = (this.sessionsInFlight.get(ticket.session) ?? 1) - 1;
    if (count > 0) this.sessionsInFlight.set(ticket.session, count);
    else {
      this.sessionsInFlight.delete(ticket.session);
      this.spoiledSessions.delete(ticket.session);
      this.appliedWhileReading.delete(ticket.session);
    }
  }

  /**
   * This worker is about to write the session's keys: its kept answer goes, and every read of the
   * session in flight spoils (Redis's invalidation for the write may arrive after the reply).
   */
  forget(session: SessionKeys): void {
    this.drop(session.base);
    if (this.sessionsInFlight.has(session.base)) this.spoiledSessions.add(session.base);
  }

  /**
   * This worker is sending a write of a session's keys whose outcome it will apply itself
   * (`wrote`, with the number this returns): Redis tells it nothing of its own writes (NOLOOP).
   * Reads of the session in flight were sent before it and do not reflect it; their answers get
   * it applied when it is handled (in `wrote` or in `keep`, whichever comes last).
   */
  writing(): number {
    return ++this.writeSeq;
  }

  /**
   * This worker's write number `seq` of the session's keys was applied: the kept answer becomes
   * what `update` makes of it (undefined drops it), unless it already reflects the write.
   */
  wrote(session: SessionKeys, seq: number, update: (kept: T) => T | undefined): void {
    if (this.sessionsInFlight.has(session.base)) {
      const list = this.appliedWhileReading.get(session.base) ?? [];
      list.push({ seq, update });
      this.appliedWhileReading.set(session.base, list);
    }
    const answer = this.answers.get(session.base);
    if (answer === undefined || answer.seq >= seq) return;
    const next = update(answer.value);
    if (next === undefined) this.drop(session.base);
    else this.answers.set(session.base, { ...answer, value: next, seq });
  }

  /** Calls `listener` with each key Redis says changed, and with undefined when all may have. */
  onInvalidated(listener: (key: string | undefined) => void): void {
    this.listeners.push(listener);
  }

  /** Stops tracking (Redis forgets what it tracked for this worker) and closes the subscriber. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.pingTimer);
    clearTimeout(this.retryTimer);
    this.stop(true);
    if (this.redis.status === 'ready') this.redis.call('CLIENT', 'TRACKING', 'OFF').catch(() => {});
    this.subscriber.disconnect();
  }

  private invalidated(message: unknown): void {
    // A null message: Redis flushed its tracking (FLUSHALL, or its table was full).
    if (!Array.isArray(message)) {
      this.flush();
      return;
    }
    for (const raw of message) {
      const key = String(raw);
      this.counters.invalidations++;
      for (const listener of this.listeners) listener(key);
      if (this.inFlight.has(key)) this.spoiled.add(key);
      const session = this.sessionOfKey.get(key);
      if (session !== undefined) this.drop(session);
    }
  }

  private drop(session: string): void {
    const answer = this.answers.get(session);
    if (answer === undefined) return;
    this.answers.delete(session);
    for (const key of answer.keys) if (this.sessionOfKey.get(key) === session) this.sessionOfKey.delete(key);
  }

  private flush(): void {
    for (const listener of this.listeners) listener(undefined);
    this.counters.flushes++;
    this.epoch++;
    this.answers.clear();
    this.sessionOfKey.clear();
  }

  private stop(subscriberLost: boolean): void {
    this.tracking = false;
    if (subscriberLost) {
      this.subscriberId = undefined;
      this.subscriberGeneration++;
    } else this.sessionGeneration++;
    this.flush();
  }

  /** On each connect of the subscriber: its id (new each time), then the invalidation channel. */
  private async subscribe(): Promise<void> {
    this.stop(true);
    if (this.closed) return;
    const generation = this.subscriberGeneration;
    try {
      const id = await this.subscriber.client('ID');
      await this.subscriber.subscribe(INVALIDATE_CHANNEL);
      if (generation !== this.subscriberGeneration || this.closed) return;
      this.subscriberId = id;
    } catch (error) {
      if (generation === this.subscriberGeneration) this.failed(error);
      return;
    }
    await this.enable();
  }

  /** Turns tracking on for the session connection, redirected to the subscriber as it is now. */
  private async enable(): Promise<void> {
    const id = this.subscriberId;
    if (this.closed || id === undefined || this.redis.status !== 'ready') return;
    this.tracking = false;
    // Answers read before tracking is on must not be kept.
    this.flush();
    const generations = [this.sessionGeneration, this.subscriberGeneration];
    try {
      // NOLOOP: this worker's own writes are applied to its answers (`wrote`) or drop them
      // (`forget`), never echoed back as invalidations.
      await this.redis.call('CLIENT', 'TRACKING', 'ON', 'REDIRECT', String(id), 'NOLOOP');
    } catch (error) {
      this.failed(error);
      return;
    }
    // A connection closed or came back while this was on its way: that event decides.
    const [session, subscriber] = generations;
    if (this.closed || session !== this.sessionGeneration || subscriber !== this.subscriberGeneration) return;
    this.tracking = true;
  }

  /**
   * Redis refused (before 6.0, a proxy without tracking, an ACL without CLIENT): hydrates go to
   * Redis from now on. Anything else (a timeout, BUSY, a redirect target that just went away) is
   * tried again in a second; a lost connection starts over by itself when it is back.
   */
  private failed(error: unknown): void {
    if (this.closed) return;
    if (error instanceof ReplyError && REFUSALS.test((error as Error).message)) {
      this.options.onUnavailable?.((error as Error).message);
      this.close();
      return;
    }
    if (this.retryTimer !== undefined) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.subscriberId === undefined) {
        if (this.subscriber.status === 'ready') void this.subscribe();
      } else void this.enable();
    }, 1_000);
    this.retryTimer.unref();
  }

  /** A subscriber that does not answer a ping is treated as lost, and reconnected. */
  private async checkSubscriber(): Promise<void> {
    if (this.closed || this.subscriberId === undefined || this.subscriber.status !== 'ready') return;
    const generation = this.subscriberGeneration;
    let timer: NodeJS.Timeout | undefined;
    const answered = await Promise.race([
      this.subscriber.ping().then(
        () => true,
        () => false,
      ),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), Math.min(2_000, this.pingMs));
      }),
    ]);
    clearTimeout(timer);
    if (answered || this.closed || generation !== this.subscriberGeneration) return;
    this.stop(true);
    this.subscriber.disconnect(true);
  }
}
