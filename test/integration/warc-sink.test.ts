import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SinkEntry } from '@crawlfleet/sinks';
import { WarcTarget } from '@crawlfleet/sinks/warc';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WARCParser } from 'warcio';
import { storedResult } from '../src/stored-result.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'crawlfleet-warc-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const FETCHED_AT = '2025-03-04T05:06:07.089Z';

/**
 * Entry `i` of a mix as the outbox hands results over: plain text, a binary body, a truncated body,
 * a page in ISO-8859-1 (its text re-encoded as UTF-8 inline), a gzip-encoded redirect target, and
 * and a windows-1252 page whose text the body store holds (as UTF-8, as inline text is).
 */
function entry(tag: string, i: number): SinkEntry {
  const key = `ik-${tag}-${i}`;
  const base = { fetchedAt: FETCHED_AT, tenant: `tenant-${i % 3}` };
  switch (i % 6) {
    case 0: {
      const result = storedResult(key, base);
      return { entryId: `${i}-0`, result, body: Buffer.from(result.body) };
    }
    case 1: {
      const body = randomBytes(200 + i);
      const result = storedResult(key, {
        ...base,
        headers: { 'content-type': 'image/png' },
        body: body.toString('base64'),
        bodyEncoding: 'base64',
        bodyBytes: body.length,
      });
      return { entryId: `${i}-0`, result, body };
    }
    case 2: {
      const result = storedResult(key, { ...base, body: 'x'.repeat(64), bodyBytes: 10_000, bodyTruncated: true });
      return { entryId: `${i}-0`, result, body: Buffer.from(result.body) };
    }
    case 3: {
      const result = storedResult(key, {
        ...base,
        headers: { 'content-type': 'text/html; charset=ISO-8859-1', 'content-language': 'fr' },
        body: `<p>café n°${i}</p>`,
      });
      return { entryId: `${i}-0`, result, body: Buffer.from(result.body, 'utf8') };
    }
    case 4: {
      const result = storedResult(key, {
        ...base,
        url: `http://127.0.0.1:8080/start/${key}?a=1&b=2`,
        finalUrl: `http://127.0.0.1:8080/landed/${key}`,
        status: 404,
        redirects: 1,
        headers: {
          'content-type': 'application/json',
          'content-encoding': 'gzip',
          'content-length': '17',
          etag: '"e1"',
        },
        body: `{"key":"${key}"}`,
      });
      return { entryId: `${i}-0`, result, body: Buffer.from(result.body) };
    }
    default: {
      const body = Buffer.from(`caf\xe9 ${i}`, 'utf8');
      const result = storedResult(key, {
        ...base,
        headers: { 'content-type': 'text/plain; charset=windows-1252' },
        body: body.toString('utf8'),
        bodyRef: `file:/bodies/sha256/00/${key}`,
      });
      return { entryId: `${i}-0`, result, body };
    }
  }
}

function entries(tag: string, count: number): SinkEntry[] {
  return Array.from({ length: count }, (_, i) => entry(tag, i));
}

/** One record as warcio reads it back: WARC and HTTP header names lower-cased. */
interface ReadRecord {
  type: string;
  warc: Record<string, string>;
  statusline: string | undefined;
  http: Record<string, string>;
  payload: Buffer;
}

async function readWarc(path: string): Promise<ReadRecord[]> {
  const records: ReadRecord[] = [];
  for await (const record of new WARCParser(createReadStream(path))) {
    records.push({
      type: record.warcType,
      warc: Object.fromEntries(record.warcHeaders.headers),
      statusline: record.httpHeaders?.statusline,
      http: Object.fromEntries(record.httpHeaders?.headers ?? []),
      payload: Buffer.from(await record.readFully(false)),
    });
  }
  return records;
}

async function filesIn(directory: string): Promise<string[]> {
  return (await readdir(directory)).sort();
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Checks one result's response and request records against what was written. */
function expectResultRecords(response: ReadRecord, request: ReadRecord, written: SinkEntry): void {
  const { result, body } = written;
  expect(response.type).toBe('response');
  expect(response.warc['warc-target-uri']).toBe(result.finalUrl);
  expect(response.warc['warc-date']).toBe(result.fetchedAt);
  expect(response.warc['warc-crawlfleet-idempotency-key']).toBe(result.idempotencyKey);
  expect(response.warc['warc-crawlfleet-tenant']).toBe(result.tenant);
  expect(response.warc['warc-truncated']).toBe(result.bodyTruncated ? 'length' : undefined);
  expect(response.warc['warc-payload-digest']).toBe(sha256(body));
  expect(response.statusline).toMatch(new RegExp(`^HTTP/1\\.1 ${result.status} `));
  expect(response.http['content-length']).toBe(String(body.length));
  expect(response.http['content-encoding']).toBeUndefined();
  expect(response.payload.equals(body)).toBe(true);

  expect(request.type).toBe('request');
  expect(request.warc['warc-target-uri']).toBe(result.url);
  expect(request.warc['warc-concurrent-to']).toBe(response.warc['warc-record-id']);
  const url = new URL(result.url);
  expect(request.statusline).toBe(`GET ${url.pathname}${url.search} HTTP/1.1`);
  expect(request.http.host).toBe(url.host);
  expect(request.payload.length).toBe(0);
}

/** The pid of a process that has already exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '']);
  expect(child.status).toBe(0);
  return child.pid;
}

describe('WarcTarget', () => {
  it('writes each result as a response and its request after one warcinfo, readable by warcio', async () => {
    const target = await WarcTarget.open(dir, { sinkName: 'archive' });
    expect(target.description).toBe(`warc:${dir}`);
    const all = entries('mix', 300);
    for (const [start, end] of [
      [0, 1],
      [1, 50],
      [50, 150],
      [150, 300],
    ] as const) {
      await target.write(all.slice(start, end));
      // Durable before write resolves: the open file already holds the batch, whole.
      const [part] = await filesIn(dir);
      expect(part).toMatch(/\.warc\.gz\.part$/);
      expect(await readWarc(join(dir, part as string))).toHaveLength(1 + 2 * end);
    }
    await target.close();

    const files = await filesIn(dir);
    expect(files).toHaveLength(1);
    const [name] = files as [string];
    expect(name).toMatch(
      new RegExp(`^archive-\\d{8}T\\d{6}Z-${hostname().replace(/[.]/g, '\\.')}-${process.pid}-\\d+\\.warc\\.gz$`),
    );
    const records = await readWarc(join(dir, name));
    expect(records).toHaveLength(1 + 2 * all.length);

    const [warcinfo] = records as [ReadRecord];
    expect(warcinfo.type).toBe('warcinfo');
    expect(warcinfo.warc['warc-filename']).toBe(name);
    const info = warcinfo.payload.toString('utf8');
    expect(info).toContain('software: crawlfleet\r\n');
    expect(info).toContain('format: WARC File Format 1.1\r\n');
    expect(info).toContain('crawlfleet-sink: archive\r\n');

    all.forEach((written, i) => {
      const response = records[1 + 2 * i] as ReadRecord;
      const request = records[2 + 2 * i] as ReadRecord;
      expectResultRecords(response, request, written);
      expect(response.warc['warc-warcinfo-id']).toBe(warcinfo.warc['warc-record-id']);
    });
    const keys = records.flatMap((record) => record.warc['warc-crawlfleet-idempotency-key'] ?? []);
    expect(keys.sort()).toEqual(all.map((written) => written.result.idempotencyKey).sort());
    expect(new Set(keys).size).toBe(all.length);

    // Each block (HTTP head and payload, as stored) matches its digest.
    let blocks = 0;
    for await (const record of new WARCParser(createReadStream(join(dir, name)), { parseHttp: false })) {
      const block = Buffer.from(await record.readFully(false));
      if (record.warcType !== 'warcinfo') expect(record.warcHeader('WARC-Block-Digest')).toBe(sha256(block));
      blocks++;
    }
    expect(blocks).toBe(records.length);
  });

  it('rewrites the headers to fit the decoded body it stores', async () => {
    const target = await WarcTarget.open(dir, { sinkName: 'headers' });
    const mix = entries('hdr', 6);
    await target.write(mix);
    await target.close();
    const [name] = await filesIn(dir);
    const responses = (await readWarc(join(dir, name as string))).filter((record) => record.type === 'response');

    // Inline text was re-encoded as UTF-8: the charset says so, and the bytes are UTF-8.
    const latin = responses[3] as ReadRecord;
    expect(latin.http['content-type']).toBe('text/html; charset=utf-8');
    expect(latin.http['content-language']).toBe('fr');
    expect(latin.payload.toString('utf8')).toBe('<p>café n°3</p>');
    // The decoded body has no content-encoding, and its own length.
    const json = responses[4] as ReadRecord;
    expect(json.statusline).toBe('HTTP/1.1 404 Not Found');
    expect(json.http).toMatchObject({ 'content-type': 'application/json; charset=utf-8', etag: '"e1"' });
    expect(json.http['content-encoding']).toBeUndefined();
    expect(json.http['content-length']).toBe(String((mix[4] as SinkEntry).body.length));
    // Text from the body store is UTF-8 too (the store holds what an inline body would).
    const stored = responses[5] as ReadRecord;
    expect(stored.http['content-type']).toBe('text/plain; charset=utf-8');
    expect(stored.payload.toString('utf8')).toBe('caf\xe9 5');
    // Binary bodies keep their type untouched.
    expect((responses[1] as ReadRecord).http['content-type']).toBe('image/png');
  });

  it('rotates to a new file, each with its own warcinfo, once a file passes maxFileBytes', async () => {
    const maxFileBytes = 20_000;
    const target = await WarcTarget.open(dir, { sinkName: 'rotating', maxFileBytes });
    const all = entries('rot', 300);
    for (let start = 0; start < all.length; start += 70) await target.write(all.slice(start, start + 70));
    await target.close();

    const files = await filesIn(dir);
    expect(files.length).toBeGreaterThan(3);
    const keys: string[] = [];
    for (const [index, name] of files.entries()) {
      expect(name).toMatch(/^rotating-.+\.warc\.gz$/);
      const size = (await stat(join(dir, name))).size;
      // Every file but the last stops at the first result that takes it past the limit.
      if (index < files.length - 1) expect(size).toBeGreaterThanOrEqual(maxFileBytes);
      expect(size).toBeLessThan(maxFileBytes + 3_000);
      const records = await readWarc(join(dir, name));
      expect(records.filter((record) => record.type === 'warcinfo')).toHaveLength(1);
      expect(records[0]?.warc['warc-filename']).toBe(name);
      expect(records.length % 2).toBe(1);
      for (let i = 1; i < records.length; i += 2) {
        const response = records[i] as ReadRecord;
        const written = all.find((e) => e.result.idempotencyKey === response.warc['warc-crawlfleet-idempotency-key']);
        expectResultRecords(response, records[i + 1] as ReadRecord, written as SinkEntry);
        keys.push(response.warc['warc-crawlfleet-idempotency-key'] as string);
      }
    }
    expect(keys.sort()).toEqual(all.map((written) => written.result.idempotencyKey).sort());
  });

  it('leaves nothing of a batch that failed, so its redelivery follows whole records', async () => {
    const target = await WarcTarget.open(dir, { sinkName: 'failing' });
    // A body that is not bytes makes the batch fail halfway, as a failed write would.
    const broken = (tag: string): SinkEntry[] => {
      const batch = entries(tag, 10);
      batch[5] = { ...(batch[5] as SinkEntry), body: undefined as unknown as Buffer };
      return batch;
    };
    // The first batch of a new file fails: the file goes with it.
    await expect(target.write(broken('first'))).rejects.toThrow(TypeError);
    expect(await filesIn(dir)).toEqual([]);
    await target.write(entries('a', 3));
    await expect(target.write(broken('b'))).rejects.toThrow(TypeError);
    await target.write(entries('c', 3));
    await target.close();

    const [name] = await filesIn(dir);
    const records = await readWarc(join(dir, name as string));
    expect(records.map((record) => record.type)).toEqual([
      'warcinfo',
      ...Array(6).fill(['response', 'request']).flat(),
    ]);
    expect(records.flatMap((record) => record.warc['warc-crawlfleet-idempotency-key'] ?? [])).toEqual([
      'ik-a-0',
      'ik-a-1',
      'ik-a-2',
      'ik-c-0',
      'ik-c-1',
      'ik-c-2',
    ]);
  });

  it('finishes a dead writer’s .part file with exactly its whole records, cutting a torn last one', async () => {
    // A whole file from a real writer: warcinfo, response, request.
    const source = join(dir, 'source');
    const writer = await WarcTarget.open(source, { sinkName: 'crashed' });
    await writer.write([entry('torn', 0)]);
    await writer.close();
    const [written] = await filesIn(source);
    const bytes = await readFile(join(source, written as string));
    const parser = new WARCParser([bytes]);
    const offsets: number[] = [];
    for await (const record of parser) {
      await record.readFully(false);
      offsets.push(parser.offset);
    }
    expect(offsets).toHaveLength(3);
    const thirdStart = offsets[2] as number;
    const whole = bytes.subarray(0, thirdStart);

    const pid = deadPid();
    // Torn in the third record's gzip header, in its deflate stream, and in its trailer.
    const cuts = [thirdStart + 3, thirdStart + Math.floor((bytes.length - thirdStart) / 2), bytes.length - 2];
    const crashDir = join(dir, 'crashed');
    await mkdir(crashDir);
    for (const [i, cut] of cuts.entries()) {
      const name = `crashed-20250304T050607Z-${hostname()}-${pid}-${i}.warc.gz`;
      await writeFile(join(crashDir, `${name}.part`), bytes.subarray(0, cut));
    }
    // Left alone: a live writer's file, and one from another host whose writers this host cannot see.
    const live = `crashed-20250304T050607Z-${hostname()}-${process.pid}-9.warc.gz.part`;
    const foreign = `crashed-20250304T050607Z-elsewhere-${pid}-9.warc.gz.part`;
    await writeFile(join(crashDir, live), bytes.subarray(0, cuts[1]));
    await writeFile(join(crashDir, foreign), bytes.subarray(0, cuts[1]));
    // A file that never got past its warcinfo holds no result: it goes.
    await writeFile(
      join(crashDir, `crashed-20250304T050607Z-${hostname()}-${pid}-5.warc.gz.part`),
      bytes.subarray(0, (offsets[1] as number) + 10),
    );

    const target = await WarcTarget.open(crashDir, { sinkName: 'crashed' });
    await target.close();

    const finished = cuts.map((_, i) => `crashed-20250304T050607Z-${hostname()}-${pid}-${i}.warc.gz`);
    expect(await filesIn(crashDir)).toEqual([...finished, live, foreign].sort());
    for (const name of finished) {
      const repaired = await readFile(join(crashDir, name));
      expect(repaired.equals(whole)).toBe(true);
      const records = await readWarc(join(crashDir, name));
      expect(records.map((record) => record.type)).toEqual(['warcinfo', 'response']);
      expect(records[1]?.warc['warc-crawlfleet-idempotency-key']).toBe('ik-torn-0');
    }
  });

  it('creates a missing directory, leaves no file when nothing was written, and refuses one it cannot create', async () => {
    const nested = join(dir, 'a', 'b');
    const target = await WarcTarget.open(nested, { sinkName: 'idle' });
    await target.write([]);
    await target.close();
    expect(await filesIn(nested)).toEqual([]);

    const blocker = join(dir, 'a-file');
    await writeFile(blocker, 'not a directory');
    const refused = WarcTarget.open(join(blocker, 'out'), { sinkName: 'blocked' });
    await expect(refused).rejects.toMatchObject({ name: 'InputError', code: 'invalid_sink' });
    await expect(refused).rejects.toThrow(/^warc sink blocked: cannot use directory .+a-file\/out: [^\n]+$/);
  });
});
