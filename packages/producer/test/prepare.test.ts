import { InputError, parseConfig, parseFetchJob } from '@crawlfleet/core';
import { describe, expect, it } from 'vitest';
import { InvalidTargetsError, prepareJobs, readTargetLines, type SubmitTarget } from '../src/index.js';

const config = parseConfig({ tenants: { shop: {} } });
const options = { tenant: 'default' };
const BASE = 'http://a.example/';

/** A URL whose serialized form is exactly `length` characters. */
const urlOfLength = (length: number) => `${BASE}${'a'.repeat(length - BASE.length)}`;

/** The error `prepareJobs` throws for `input`; fails when it throws none. */
function refusal(input: Parameters<typeof prepareJobs>[1]): InputError {
  try {
    prepareJobs(config, input, options);
  } catch (error) {
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).not.toMatch(/[\r\n]/);
    return error as InputError;
  }
  throw new Error('expected prepareJobs to refuse its input');
}

describe('prepareJobs', () => {
  it("builds jobs that the worker's schema accepts as they are", () => {
    const jobs = prepareJobs(config, [{ url: `${BASE}x` }, { url: urlOfLength(8192), method: 'post', body: 'q' }], {
      tenant: 'shop',
      sessionId: 's-1',
    });

    expect(jobs).toHaveLength(2);
    for (const job of jobs) expect(parseFetchJob(job)).toEqual({ ok: true, job });
    expect(jobs[1]).toMatchObject({ method: 'POST', body: 'q', tenant: 'shop', sessionId: 's-1' });
  });

  it('refuses a job the worker would refuse, with the reason the worker would give', () => {
    const error = refusal([{ url: urlOfLength(8193) }]);

    expect(error.code).toBe('invalid_job');
    expect(error.message).toBe('url: longer than 8192 characters');
  });

  it('refuses a body over 1 MiB', () => {
    const error = refusal([{ url: BASE, method: 'POST', body: 'x'.repeat(1024 * 1024 + 1) }]);

    expect(error.message).toBe('body: longer than 1048576 characters');
  });

  it('names the one bad target of several and says that nothing was enqueued', () => {
    const error = refusal([{ url: BASE }, { url: urlOfLength(9000) }, { url: `${BASE}3` }]);

    expect(error).toBeInstanceOf(InvalidTargetsError);
    expect(error.code).toBe('invalid_job');
    expect(error.message).toBe('target 2: url: longer than 8192 characters; nothing was enqueued');
  });

  it('names the line of a lone target read from a file', () => {
    const error = refusal(readTargetLines('# one\nnope', 'urls.txt'));

    expect(error.message).toBe('urls.txt line 2: not a valid absolute URL: "nope"; nothing was enqueued');
  });

  it('lists every bad target in input order: arguments, then lines, unreadable ones included', () => {
    const lines = readTargetLines(['http://[x', '{"url":', `${BASE}ok`, 'ftp://a.example/'].join('\n'), 'urls.txt');
    const argument = (url: string, n: number): SubmitTarget => ({ url, source: { name: `argument ${n}` } });

    const error = refusal({
      targets: [argument(`${BASE}1`, 1), argument('nope', 2), ...lines.targets],
      problems: lines.problems,
    });

    expect(error).toBeInstanceOf(InvalidTargetsError);
    expect(error.code).toBe('invalid_targets');
    expect(error.message).toBe('4 bad targets; nothing was enqueued');
    expect((error as InvalidTargetsError).problems).toEqual([
      { where: 'argument 2', line: undefined, code: 'invalid_url', message: 'not a valid absolute URL: "nope"' },
      { where: 'urls.txt line 1', line: 1, code: 'invalid_url', message: 'not a valid absolute URL: "http://[x"' },
      { where: 'urls.txt line 2', line: 2, code: 'invalid_target', message: 'not valid JSON' },
      {
        where: 'urls.txt line 4',
        line: 4,
        code: 'unsupported_scheme',
        message: 'only http and https URLs can be crawled, got ftp: "ftp://a.example/"',
      },
    ]);
  });

  it('keeps every bad target, however many, for the caller to list or count', () => {
    const text = Array.from({ length: 1_000 }, (_, i) => `bad ${i}`).join('\n');

    const error = refusal(readTargetLines(text, 'urls.txt')) as InvalidTargetsError;

    expect(error.problems).toHaveLength(1_000);
    expect(error.problems.at(-1)?.where).toBe('urls.txt line 1000');
  });

  it('throws the error of a lone argument as it is', () => {
    const error = refusal([{ url: 'nope', source: { name: 'argument 1' } }]);

    expect(error).not.toBeInstanceOf(InvalidTargetsError);
    expect(error.code).toBe('invalid_url');
    expect(error.message).toBe('not a valid absolute URL: "nope"');
  });

  it('refuses an unknown tenant before looking at any target', () => {
    expect(() => prepareJobs(config, [{ url: 'nope' }], { tenant: 'site' })).toThrow(
      'unknown tenant "site": the config has tenants default, shop',
    );
  });
});
