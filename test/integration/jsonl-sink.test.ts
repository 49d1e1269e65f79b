import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { StoredResult } from '@crawlfleet/results';
import { JsonlTarget, type SinkEntry } from '@crawlfleet/sinks';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { storedResult } from '../src/stored-result.js';

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'crawlfleet-jsonl-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function entries(tag: string, count: number): SinkEntry[] {
  return Array.from({ length: count }, (_, i) => {
    const result = storedResult(`ik-${tag}-${i}`);
    return { entryId: `${1_000 + i}-0`, result, body: Buffer.from(result.body) };
  });
}

function keysIn(text: string): string[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => (JSON.parse(line) as StoredResult).idempotencyKey);
}

/** The pid of a process that has exited: what a crashed writer leaves in its file names. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

describe('JsonlTarget', () => {
  it('writes every result as one line, rotating files past their size, none left open', async () => {
    const target = await JsonlTarget.open(dir, { sinkName: 'files', maxFileBytes: 4_000 });
    for (let batch = 0; batch < 10; batch++) await target.write(entries(`b${batch}`, 10));
    await target.close();

    const names = readdirSync(dir);
    expect(names.length).toBeGreaterThan(3);
    expect(names.every((name) => /^files-\d{8}T\d{6}Z-.+-\d+-\d+\.jsonl$/.test(name))).toBe(true);
    const keys = names.flatMap((name) => keysIn(readFileSync(join(dir, name), 'utf8')));
    expect(keys).toHaveLength(100);
    expect(new Set(keys).size).toBe(100);
  });

  it('gzips each batch as a member of one file that gunzip reads whole', async () => {
    const target = await JsonlTarget.open(dir, { sinkName: 'gz', gzip: true });
    await target.write(entries('a', 30));
    await target.write(entries('b', 30));
    await target.close();

    const [name] = readdirSync(dir);
    expect(name).toMatch(/\.jsonl\.gz$/);
    expect(keysIn(gunzipSync(readFileSync(join(dir, String(name)))).toString('utf8'))).toHaveLength(60);
  });

  it('finishes the files of a writer of this host that died: whole lines kept, the torn one cut', async () => {
    const pid = deadPid();
    const lines = entries('crashed', 3).map(({ result }) => JSON.stringify(result));
    const plain = join(dir, `files-20261130T000000Z-${hostname()}-${pid}-1.jsonl.part`);
    writeFileSync(plain, `${lines[0]}\n${lines[1]}\n${lines[2]?.slice(0, 40)}`);
    const zipped = join(dir, `files-20261130T000000Z-${hostname()}-${pid}-2.jsonl.gz.part`);
    const torn = gzipSync(`${lines[2]}\n`);
    writeFileSync(zipped, Buffer.concat([gzipSync(`${lines[0]}\n${lines[1]}\n`), torn.subarray(0, 12)]));
    // A live writer's file is left alone.
    const live = join(dir, `files-20261130T000000Z-${hostname()}-${process.pid}-3.jsonl.part`);
    writeFileSync(live, `${lines[0]}\n`);

    const target = await JsonlTarget.open(dir, { sinkName: 'files' });
    await target.close();

    expect(keysIn(readFileSync(plain.slice(0, -'.part'.length), 'utf8'))).toEqual(['ik-crashed-0', 'ik-crashed-1']);
    expect(keysIn(gunzipSync(readFileSync(zipped.slice(0, -'.part'.length))).toString('utf8'))).toEqual([
      'ik-crashed-0',
      'ik-crashed-1',
    ]);
    expect(readdirSync(dir)).toContain(live.slice(dir.length + 1));
  });

  it('refuses a directory it cannot create with a one-line error', async () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, '');
    await expect(JsonlTarget.open(join(file, 'below'), { sinkName: 'files' })).rejects.toMatchObject({
      code: 'invalid_sink',
      message: expect.stringMatching(/^jsonl:.*cannot create the directory/),
    });
  });
});
