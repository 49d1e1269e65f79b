import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NonRecoverableError } from '@crawlfleet/failures';
import { afterAll, describe, expect, it } from 'vitest';
import { SecretResolver } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'crawlfleet-secrets-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('secrets read at login time', () => {
  it('reads ${NAME} from the environment and ${file:...} from a mounted file without its trailing newline', () => {
    const file = join(dir, 'password');
    writeFileSync(file, 's3cr3t-from-file\n');
    const secrets = new SecretResolver({ USER_NAME: 'alice' });
    expect(secrets.resolve(`\${USER_NAME}:\${file:${file}}`)).toBe('alice:s3cr3t-from-file');
  });

  it('fails as login_secret_missing, naming the file but no value, when a file cannot be read', () => {
    const secrets = new SecretResolver({});
    const attempt = () => secrets.resolve(`\${file:${join(dir, 'absent')}}`);
    expect(attempt).toThrow(NonRecoverableError);
    expect(attempt).toThrow(/secret file .*absent, which cannot be read \(ENOENT\)/);
  });

  it('scrubs every value it handed out, and the tokens it is given, from a quoted answer', () => {
    const secrets = new SecretResolver({ PASSWORD: 'hunter22' });
    secrets.resolve('${PASSWORD}');
    expect(secrets.scrub('you typed hunter22 with token abcdef', ['abcdef'])).toBe(
      'you typed [secret] with token [secret]',
    );
  });

  it('scrubs a secret however an answer quotes it: HTML-escaped, URL- or form-encoded, JSON-escaped', () => {
    const secrets = new SecretResolver({ PASSWORD: 'p&ss<w"rd one' });
    secrets.resolve('${PASSWORD}');
    const quoted = [
      'p&amp;ss&lt;w&quot;rd one',
      'p%26ss%3Cw%22rd%20one',
      'p%26ss%3Cw%22rd+one',
      JSON.stringify({ password: 'p&ss<w"rd one' }),
    ].join(' | ');
    expect(secrets.scrub(quoted)).toBe('[secret] | [secret] | [secret] | {"password":"[secret]"}');
  });
});
