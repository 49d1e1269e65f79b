import { redactPii, redactPiiDeep } from '@crawlfleet/core';
import { activeTraceIds } from '@crawlfleet/tracing';
import { type Logger, type LoggerOptions, pino } from 'pino';

export type { Logger } from 'pino';

/**
 * Header and field paths whose values never reach a log line, whatever the level. Extended by
 * the observability work (value scrubbing, PII); kept here so every app gets it by default.
 */
export const REDACTED_PATHS = [
  'headers.cookie',
  'headers.authorization',
  'headers["set-cookie"]',
  'headers["proxy-authorization"]',
  '*.headers.cookie',
  '*.headers.authorization',
  '*.headers["set-cookie"]',
  'password',
  'token',
  '*.password',
  '*.token',
];

export interface LoggerFactoryOptions {
  /** The process or component name: `worker`, `cli`, ... */
  name: string;
  /** Defaults to `CRAWLFLEET_LOG_LEVEL`, then `info`. */
  level?: string;
  /** Where JSON lines go; stdout by default. */
  destination?: NodeJS.WritableStream;
}

/** The one logger factory all apps use: JSON lines, secrets redacted and personal data scrubbed. */
export function createLogger(options: LoggerFactoryOptions): Logger {
  const pinoOptions: LoggerOptions = {
    name: options.name,
    level: options.level ?? process.env.CRAWLFLEET_LOG_LEVEL ?? 'info',
    base: { pid: process.pid },
    // A line written inside a span names it, so logs and traces join up.
    mixin: activeTraceIds,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    // Personal data never reaches a log line: fields and the message are scrubbed alike.
    formatters: { log: (object) => redactPiiDeep(object) },
    // pino's own `err` serializer runs after the formatter, on the error it already made plain
    // (type, message, stack): left in, it would name every error's type "Object".
    serializers: { err: (value: unknown) => value },
    hooks: {
      logMethod(args, method) {
        method.apply(
          this,
          args.map((arg) => (typeof arg === 'string' ? redactPii(arg) : arg)) as Parameters<typeof method>,
        );
      },
    },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return options.destination === undefined ? pino(pinoOptions) : pino(pinoOptions, options.destination);
}
