import { readFileSync } from 'node:fs';
import { NonRecoverableError } from '@crawlfleet/failures';

const REFERENCE = /\$\{(?:file:([^}]+)|([A-Za-z_][A-Za-z0-9_]*))\}/g;

/** Secrets shorter than this are not scrubbed from snippets: they would match ordinary text. */
const MIN_SCRUBBED_LENGTH = 4;

/**
 * Resolves `${NAME}` (the environment) and `${file:/run/secrets/x}` (a secret mounted as a file
 * by Kubernetes or Docker; one trailing newline is dropped) at login time, and remembers every
 * value it handed out, so that an answer quoted in a DLQ entry can be scrubbed of them. Nothing
 * it resolves is ever queued, stored or logged.
 */
export class SecretResolver {
  private readonly values = new Set<string>();

  /**
   * `user` names what needs the secrets in the error a missing one gives, with its `reason`
   * (`the login hook`, `login_secret_missing`; `the proxy`, `proxy_secret_missing`).
   */
  constructor(
    private readonly env: NodeJS.ProcessEnv = process.env,
    private readonly readFile: (path: string) => string = (path) => readFileSync(path, 'utf8'),
    private readonly user: { name: string; reason: string } = {
      name: 'the login hook',
      reason: 'login_secret_missing',
    },
  ) {}

  resolve(text: string): string {
    return text.replace(REFERENCE, (_whole, file: string | undefined, name: string | undefined) => {
      const value = file !== undefined ? this.fromFile(file) : this.fromEnv(name as string);
      this.values.add(value);
      return value;
    });
  }

  /** Resolves every string inside a JSON value (objects and arrays too). */
  resolveDeep(value: unknown): unknown {
    if (typeof value === 'string') return this.resolve(value);
    if (Array.isArray(value)) return value.map((item) => this.resolveDeep(item));
    if (value !== null && typeof value === 'object')
      return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, this.resolveDeep(item)]));
    return value;
  }

  resolveRecord(record: Record<string, string>): Record<string, string> {
    return Object.fromEntries(Object.entries(record).map(([key, value]) => [key, this.resolve(value)]));
  }

  /** `text` with every secret this resolver handed out (and `extra`, such as tokens) replaced. */
  scrub(text: string, extra: readonly (string | undefined)[] = []): string {
    let scrubbed = text;
    for (const secret of [...this.values, ...extra]) {
      if (secret === undefined || secret.length < MIN_SCRUBBED_LENGTH) continue;
      // As an answer may quote it: raw, HTML-escaped, URL- or form-encoded, inside a JSON string.
      for (const form of new Set([
        secret,
        escapeHtml(secret),
        encodeURIComponent(secret),
        formEncode(secret),
        jsonEscape(secret),
      ]))
        scrubbed = scrubbed.split(form).join('[secret]');
    }
    return scrubbed;
  }

  private fromEnv(name: string): string {
    const found = this.env[name];
    if (found === undefined)
      throw new NonRecoverableError(this.user.reason, `${this.user.name} needs ${name}, which is not set`);
    return found;
  }

  private fromFile(path: string): string {
    try {
      return this.readFile(path).replace(/\r?\n$/, '');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      throw new NonRecoverableError(
        this.user.reason,
        `${this.user.name} needs the secret file ${path}, which cannot be read (${code})`,
      );
    }
  }
}

function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function formEncode(text: string): string {
  return new URLSearchParams({ x: text }).toString().slice(2);
}

function jsonEscape(text: string): string {
  return JSON.stringify(text).slice(1, -1);
}
