import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/index.js';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...String(chunk).trim().split('\n'));
      done();
    },
  });
  return { lines, destination };
}

describe('the logger factory', () => {
  it('writes JSON lines with the component name, level and an ISO time', () => {
    const { lines, destination } = capture();
    createLogger({ name: 'worker', level: 'info', destination }).info({ job_id: 'j1' }, 'job done');
    const line = JSON.parse(lines[0] ?? '{}');
    expect(line).toMatchObject({ name: 'worker', level: 30, job_id: 'j1', msg: 'job done' });
    expect(Date.parse(line.time)).not.toBeNaN();
  });

  it('never writes cookie, authorization or Set-Cookie header values', () => {
    const { lines, destination } = capture();
    const logger = createLogger({ name: 't', level: 'info', destination });
    logger.info({ headers: { cookie: 'sid=secret1', authorization: 'Bearer secret2', 'set-cookie': ['a=secret3'] } });
    logger.info({ response: { headers: { cookie: 'sid=secret4' } }, password: 'secret5', token: 'secret6' });
    const text = lines.join('\n');
    for (const secret of ['secret1', 'secret2', 'secret3', 'secret4', 'secret5', 'secret6'])
      expect(text).not.toContain(secret);
    expect(text).toContain('[redacted]');
  });

  it('writes an error with its type, message, code and stack, personal data scrubbed', () => {
    const { lines, destination } = capture();
    const error = Object.assign(new TypeError('cannot reach alice@example.com'), { code: 'ECONNREFUSED' });
    createLogger({ name: 't', level: 'info', destination }).error(
      { err: error, wrapped: new Error('outer', { cause: new Error('inner') }) },
      'failed',
    );
    const line = JSON.parse(lines[0] ?? '{}');
    expect(line.err).toMatchObject({ type: 'TypeError', message: 'cannot reach [email]', code: 'ECONNREFUSED' });
    expect(line.err.stack).toMatch(/^TypeError: cannot reach \[email\]\n\s+at /);
    expect(line.wrapped).toMatchObject({ type: 'Error', message: 'outer', cause: { type: 'Error', message: 'inner' } });
    expect(lines.join('\n')).not.toContain('alice@example.com');
  });

  it('takes its level from CRAWLFLEET_LOG_LEVEL by default', () => {
    const { lines, destination } = capture();
    const before = process.env.CRAWLFLEET_LOG_LEVEL;
    process.env.CRAWLFLEET_LOG_LEVEL = 'warn';
    try {
      const logger = createLogger({ name: 't', destination });
      logger.info('hidden');
      logger.warn('shown');
    } finally {
      if (before === undefined) delete process.env.CRAWLFLEET_LOG_LEVEL;
      else process.env.CRAWLFLEET_LOG_LEVEL = before;
    }
    expect(lines.map((l) => JSON.parse(l).msg)).toEqual(['shown']);
  });

  it('scrubs e-mail addresses, phone numbers and IP addresses from fields and messages', () => {
    const { lines, destination } = capture();
    const logger = createLogger({ name: 't', level: 'info', destination });
    logger.warn(
      { url: 'https://x.example/?mail=carol@example.com', peer: '198.51.100.23' },
      'call +1 415 555 0100 back',
    );
    const text = lines.join('\n');
    for (const pii of ['carol@example.com', '198.51.100.23', '415 555 0100']) expect(text).not.toContain(pii);
    expect(JSON.parse(lines[0] ?? '{}')).toMatchObject({ peer: '[ip]', msg: 'call [phone] back' });
  });
});
