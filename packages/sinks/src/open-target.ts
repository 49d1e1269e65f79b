import { InputError } from '@crawlfleet/core';
import type { SinkTarget } from './sink-target.js';

/** The kinds of sink `--to` takes, by URI scheme. */
export type SinkKind = 'jsonl' | 'warc' | 'postgres' | 's3';

const USAGE = 'must be jsonl:DIR, warc:DIR, postgres://user@host:port/db[?table=NAME] or s3://bucket/prefix';

/** The kind of sink a `--to` URI names; a bad one is refused before anything connects. */
export function sinkKind(uri: string): SinkKind {
  if (/^jsonl:./.test(uri)) return 'jsonl';
  if (/^warc:./.test(uri)) return 'warc';
  if (/^postgres(ql)?:\/\/./.test(uri)) return 'postgres';
  if (/^s3:\/\/./.test(uri)) return 's3';
  throw new InputError('invalid_sink', `--to ${USAGE}, got ${JSON.stringify(uri)}`);
}

export interface OpenTargetOptions {
  /** The sink's name: it names files and batch objects. */
  sinkName: string;
  /** For `s3://`: the AWS variables; default the process environment. */
  env?: NodeJS.ProcessEnv | undefined;
}

/**
 * Opens the target a `--to` URI names: `jsonl:DIR[?gzip=true]`, `warc:DIR`, `postgres://...`,
 * `s3://bucket/prefix`. Each kind's library loads only when it is used.
 */
export async function openTarget(uri: string, options: OpenTargetOptions): Promise<SinkTarget> {
  switch (sinkKind(uri)) {
    case 'jsonl': {
      const [dir = '', query = ''] = uri.slice('jsonl:'.length).split('?');
      const params = new URLSearchParams(query);
      const gzip = params.get('gzip');
      if (gzip !== null && gzip !== 'true' && gzip !== 'false')
        throw new InputError('invalid_sink', `--to jsonl:DIR?gzip= takes true or false, got ${JSON.stringify(gzip)}`);
      const { JsonlTarget } = await import('./jsonl-target.js');
      return JsonlTarget.open(dir, { sinkName: options.sinkName, gzip: gzip === 'true' });
    }
    case 'warc': {
      const { WarcTarget } = await import('./warc-target.js');
      return WarcTarget.open(uri.slice('warc:'.length), { sinkName: options.sinkName });
    }
    case 'postgres': {
      const { PostgresTarget } = await import('./postgres-target.js');
      return PostgresTarget.open(uri);
    }
    case 's3': {
      const { S3Target } = await import('./s3-target.js');
      return S3Target.open(uri, { sinkName: options.sinkName, env: options.env });
    }
  }
}
