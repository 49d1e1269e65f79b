/**
 * Errors a person can fix by changing what they typed or wrote. The CLI prints `message` as one
 * line and exits with `exitCode`; nothing else is thrown across package borders as a bare string.
 */
export class InputError extends Error {
  override readonly name: string = 'InputError';
  readonly exitCode: number = 2;
  /** A short stable code (`invalid_url`, `unknown_tenant`, ...) for scripts and tests. */
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** The config file is missing a field, has a wrong one, or is not JSON. */
export class ConfigError extends InputError {
  override readonly name = 'ConfigError';

  constructor(message: string) {
    super('invalid_config', message);
  }
}

/** Redis did not answer. A runtime failure, not bad input: exit code 1. */
export class RedisUnavailableError extends Error {
  override readonly name = 'RedisUnavailableError';
  readonly exitCode = 1;
  readonly code = 'redis_unavailable';
}

/** The exit code an error stands for: 2 for bad input, 1 for anything else. */
export function exitCodeOf(error: unknown): number {
  const code = (error as { exitCode?: unknown } | null)?.exitCode;
  return typeof code === 'number' ? code : 1;
}

/** An error as one line for a person: the message, newlines folded. */
export function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/\s*\n\s*/g, ' ');
}
