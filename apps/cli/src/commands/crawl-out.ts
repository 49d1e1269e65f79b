import { createReadStream, existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { BodyReader } from '@crawlfleet/bodies';
import { pipelineEach } from '@crawlfleet/core';
import { Outbox } from '@crawlfleet/results';
import { isLocalProcessAlive, JsonlFile, OutboxConsumer, type OutboxEntry } from '@crawlfleet/sinks';
import type { CommandContext } from '../context.js';

/** Keys per Redis pipeline when the crawl reads its ledger marks. */
const KEYS_PER_ROUND_TRIP = 1_000;

/** What `--out` holds at the end, against what the ledger says the crawl stored. */
export interface OutReport {
  written: number;
  expected: number;
}

/** This host, as a sink name allows it. */
const HOST = hostname()
  .replace(/[^A-Za-z0-9._-]/g, '-')
  .slice(0, 40);

/**
 * A crawl's `--out`: a JSON Lines sink of its own crawl. It registers a sink of its own before
 * the crawl starts, so no other sink can make the outbox give up the crawl's results before
 * they are in the file; while the crawl runs it writes each of the crawl's results (the entry
 * its ledger names, so a `--force` run gives one line per URL) to a file beside `out` and
 * acknowledges them, so a crawl larger than the outbox never waits for a sink. Results of other
 * jobs stay pending for it, and so stay in the outbox for their own sinks, until it is removed
 * at the end. Lines of the same crawl in an earlier `out` (or in the file of a run that died)
 * are kept, so running the command again writes every result of the crawl.
 */
export class CrawlOut {
  private readonly written = new Set<string>();
  /** Records written, by id. */
  private readonly records = new Set<string>();
  private readonly keys = new Set<string>();
  private consumer: OutboxConsumer | undefined;
  private running: Promise<unknown> | undefined;
  private readonly bodies = new BodyReader();

  private constructor(
    private readonly context: CommandContext,
    private readonly out: string,
    private readonly name: string,
    private readonly file: JsonlFile,
    /** The named crawl whose pages (links it followed included) are the crawl's own. */
    private readonly crawl: string | undefined,
  ) {}

  private static aside(out: string, pid: number): string {
    return `${out}.${pid}.tmp`;
  }

  /** Registers the crawl's sink (removing those of crawls on this host that died) and opens its file. */
  static async start(context: CommandContext, out: string, crawl?: string): Promise<CrawlOut> {
    const outbox = new Outbox(context.redis, context.keys);
    for (const sink of await outbox.sinks()) {
      const match = /^crawl-(.+)-(\d+)$/.exec(sink.name);
      if (match?.[1] === HOST && !isLocalProcessAlive(Number(match[2]))) await outbox.remove(sink.name);
    }
    const file = await JsonlFile.create(CrawlOut.aside(out, process.pid));
    const name = `crawl-${HOST}-${process.pid}`;
    await outbox.register(name);
    return new CrawlOut(context, out, name, file, crawl);
  }

  /** Starts writing the results of these keys as workers store them. */
  run(keys: readonly string[]): void {
    for (const key of keys) this.keys.add(key);
    this.consumer = new OutboxConsumer({
      redis: this.context.redis,
      keys: this.context.keys,
      name: this.name,
      target: this.file,
      bodies: this.bodies,
      keepRejected: true,
      select: (entries) => this.select(entries),
    });
    this.running = this.consumer.run();
  }

  /**
   * The crawl's own results, each once: the entry its key's ledger mark names; and, for a named
   * crawl, the records its handler pushed, each once (by id).
   */
  private async select(entries: readonly OutboxEntry[]): Promise<boolean[]> {
    // Only the crawl's own keys are looked up: other jobs' results are never its.
    const own = entries.flatMap((entry) =>
      'result' in entry &&
      (this.keys.has(entry.result.idempotencyKey) || (this.crawl !== undefined && entry.result.crawl === this.crawl))
        ? [entry.result]
        : [],
    );
    const ledger = (result: { idempotencyKey: string }) => this.context.keys.ledger(result.idempotencyKey);
    const answers = await pipelineEach(this.context.redis, own, ledger, (pipeline, result) => {
      pipeline.get(ledger(result));
    });
    const marks = new Map(own.map((result, i) => [result.idempotencyKey, answers[i]?.[0]?.[1]]));
    return entries.map((entry) => {
      if ('record' in entry) {
        const { record } = entry;
        if (this.crawl === undefined || record.crawl !== this.crawl || this.records.has(record.id)) return false;
        this.records.add(record.id);
        return true;
      }
      const key = entry.result.idempotencyKey;
      if (!marks.has(key) || marks.get(key) !== entry.entryId || this.written.has(key)) return false;
      this.written.add(key);
      return true;
    });
  }

  /**
   * Takes what the outbox holds of the crawl, removes the crawl's sink, adds the lines of earlier
   * files of the crawl that it did not find again, and moves the file into place.
   */
  async finish(): Promise<OutReport> {
    try {
      if (this.consumer !== undefined) {
        this.consumer.drain();
        await this.running;
      }
    } finally {
      await new Outbox(this.context.redis, this.context.keys).remove(this.name);
      await this.bodies.close();
    }
    // A following crawl's keys are every one it admitted, links included.
    if (this.crawl !== undefined)
      for (const key of await this.context.redis.smembers(this.context.keys.crawlSeen(this.crawl))) this.keys.add(key);
    const expected = await this.storedKeys();
    const earlier = this.earlierFiles();
    for (const path of earlier) await this.keepLines(path, expected);
    await this.file.close();
    renameSync(this.file.path, this.out);
    for (const path of earlier) if (path !== this.out) rmSync(path, { force: true });
    return { written: this.written.size, expected: expected.size };
  }

  /** Stops at once (a second Ctrl-C): the file stays beside `out` for the next run to keep. */
  async abandon(): Promise<void> {
    this.consumer?.stop();
    await this.running?.catch(() => undefined);
    await this.file.close().catch(() => undefined);
  }

  /** The crawl's keys that ended with a stored result. */
  private async storedKeys(): Promise<Set<string>> {
    const keys = [...this.keys];
    const stored = new Set<string>();
    for (let start = 0; start < keys.length; start += KEYS_PER_ROUND_TRIP) {
      const slice = keys.slice(start, start + KEYS_PER_ROUND_TRIP);
      const marks = await pipelineEach(this.context.redis, slice, this.context.keys.ledger, (pipeline, key) => {
        pipeline.get(this.context.keys.ledger(key));
      });
      for (const [i, [answer]] of marks.entries()) if (typeof answer?.[1] === 'string') stored.add(slice[i] as string);
    }
    return stored;
  }

  /** `out` as an earlier run left it, and the files of runs of this host that died mid-crawl. */
  private earlierFiles(): string[] {
    const files = existsSync(this.out) ? [this.out] : [];
    const dir = dirname(this.out);
    const head = `${basename(this.out)}.`;
    for (const name of readdirSync(dir)) {
      const middle = name.startsWith(head) && name.endsWith('.tmp') ? name.slice(head.length, -'.tmp'.length) : '';
      const pid = /^\d+$/.test(middle) ? Number(middle) : 0;
      if (pid > 0 && pid !== process.pid && !isLocalProcessAlive(pid)) files.push(join(dir, name));
    }
    return files;
  }

  /** Adds the lines of `path` whose key the crawl stored and the file lacks. */
  private async keepLines(path: string, stored: ReadonlySet<string>): Promise<void> {
    let kept = '';
    const lines = createInterface({ input: createReadStream(path), crlfDelay: Number.POSITIVE_INFINITY });
    for await (const line of lines) {
      let key: unknown;
      try {
        key = (JSON.parse(line) as { idempotencyKey?: unknown }).idempotencyKey;
      } catch {
        continue;
      }
      if (typeof key !== 'string' || !stored.has(key) || this.written.has(key)) continue;
      this.written.add(key);
      kept += `${line}\n`;
      if (kept.length >= 1 << 20) {
        await this.file.append(kept);
        kept = '';
      }
    }
    if (kept !== '') await this.file.append(kept);
  }
}
