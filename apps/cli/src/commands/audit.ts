import { AUDIT_KINDS, type AuditKind, AuditLog } from '@crawlfleet/audit';
import { DEFAULT_TENANT, InputError } from '@crawlfleet/core';
import { loadSessionHasher } from '@crawlfleet/sessions';
import type { Command } from 'commander';
import { type GlobalOptions, openContext } from '../context.js';
import { positiveInt } from '../options.js';
import { printJson, table } from '../output.js';

export function registerAudit(program: Command): void {
  program
    .command('audit')
    .description('show the audit stream, newest first: retries, DLQ moves, quarantines, breaker transitions, replays')
    .option('-s, --session <id>', 'only events of this session')
    .option('-t, --tenant <name>', 'the tenant of --session', DEFAULT_TENANT)
    .option('--kind <kind>', `only this kind (${AUDIT_KINDS.join(', ')})`)
    .option('--limit <n>', 'at most n events', positiveInt, 100)
    .option('--json', 'print a JSON array of events')
    .action(
      async (
        options: { session?: string; tenant: string; kind?: string; limit: number; json?: boolean },
        command: Command,
      ) => {
        if (options.kind !== undefined && !(AUDIT_KINDS as readonly string[]).includes(options.kind)) {
          throw new InputError(
            'invalid_kind',
            `--kind must be one of ${AUDIT_KINDS.join(', ')}, got ${JSON.stringify(options.kind)}`,
          );
        }
        const context = await openContext(command.optsWithGlobals<GlobalOptions>());
        try {
          const log = new AuditLog(context.redis, context.keys, context.config.retention.auditMaxLen);
          const hasher = await loadSessionHasher(context.redis, context.keys.sessionHashKey);
          const events = await log.query({
            session: options.session === undefined ? undefined : hasher.hash(options.tenant, options.session),
            kind: options.kind as AuditKind | undefined,
            limit: options.limit,
          });
          if (options.json) {
            printJson(events);
            return;
          }
          if (events.length === 0) {
            process.stdout.write('no audit events\n');
            return;
          }
          const rows = events.map((e) => [e.at, e.kind, e.reason ?? '', e.jobId ?? '', e.url ?? '']);
          process.stdout.write(`${table(['at', 'kind', 'reason', 'job', 'url'], rows)}\n`);
        } finally {
          await context.close();
        }
      },
    );
}
