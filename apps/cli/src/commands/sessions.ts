import { AuditLog } from '@crawlfleet/audit';
import { checkName, DEFAULT_TENANT, InputError, type SessionKeys } from '@crawlfleet/core';
import { tlsFamilyOf } from '@crawlfleet/fetcher';
import {
  loadSessionHasher,
  normalizeAuth,
  SessionCookieJar,
  type SessionMeta,
  type SessionProfile,
} from '@crawlfleet/sessions';
import { requireKeyRing, SessionAdmin, SlateStore } from '@crawlfleet/slates';
import type { Command } from 'commander';
import { type CommandContext, connect, type GlobalOptions, loadSettings, openSessionContext } from '../context.js';
import { plural, printJson, say, table } from '../output.js';
import { parseProxyId, sessionsThrough } from '../session-proxies.js';

export function registerSessions(program: Command): void {
  const sessions = program.command('sessions').description('inspect and purge session state (cookies, auth, meta)');

  sessions
    .command('list')
    .description('list sessions that have state, with their slates')
    .option('-t, --tenant <name>', 'only this tenant')
    .option(
      '--proxy <id>',
      'only sessions whose profile names this proxy, scheme://host:port as sessions show names it (reads every profile, so it needs the session keys; profiles they cannot open are skipped and counted)',
    )
    .option('--json', 'print a JSON array of {tenant,sessionId,slates}, with proxy under --proxy')
    .action(async (options: { tenant?: string; proxy?: string; json?: boolean }, command: Command) => {
      const tenant = options.tenant === undefined ? undefined : checkName('--tenant', options.tenant);
      // Bad input and missing keys fail before any connection.
      const byProxy =
        options.proxy === undefined ? undefined : { proxy: parseProxyId(options.proxy), ring: requireKeyRing() };
      const context = await openSessionContext(command.optsWithGlobals<GlobalOptions>());
      try {
        const listed = await new SessionAdmin(context.redis, context.keys).list(tenant);
        if (byProxy === undefined) {
          if (options.json) printJson(listed);
          else if (listed.length === 0) process.stdout.write('no sessions have state\n');
          else
            process.stdout.write(
              `${table(
                ['tenant', 'session', 'slates'],
                listed.map((s) => [s.tenant, s.sessionId, s.slates.sort().join(',')]),
              )}\n`,
            );
          return;
        }
        const { proxy, ring } = byProxy;
        const store = new SlateStore(context.redis, context.keys, ring, { openedSlates: 0 });
        const { sessions: found, unreadable } = await sessionsThrough(store, listed, proxy);
        if (unreadable > 0)
          say(
            `crawlfleet: skipped ${plural(unreadable, 'session')} whose profile could not be opened (sealed with a key these keys lack, or damaged)`,
          );
        if (options.json) printJson(found);
        else if (found.length === 0) process.stdout.write(`no sessions go through ${proxy}\n`);
        else
          process.stdout.write(
            `${table(
              ['tenant', 'session', 'proxy', 'slates'],
              found.map((s) => [s.tenant, s.sessionId, s.proxy, s.slates.join(',')]),
            )}\n`,
          );
      } finally {
        await context.close();
      }
    });

  sessions
    .command('show')
    .description(
      'show a session: cookie names, domains and expiry, auth expiry, identity, browser storage origins, meta (never values or tokens)',
    )
    .argument('<session>', 'the session id')
    .option('-t, --tenant <name>', 'the tenant', DEFAULT_TENANT)
    .option('--json', 'print JSON')
    .action(async (sessionId: string, options: { tenant: string; json?: boolean }, command: Command) => {
      const keysOf = { tenant: checkName('--tenant', options.tenant), sessionId: checkName('session', sessionId) };
      const ring = requireKeyRing();
      const settings = loadSettings(command.optsWithGlobals<GlobalOptions>());
      const context = await connect(settings, settings.env.sessionRedisUrl);
      try {
        const store = new SlateStore(context.redis, context.keys, ring, { openedSlates: 0 });
        const session = store.session(keysOf.tenant, keysOf.sessionId);
        const [slates, quarantine] = await Promise.all([
          store.read(session, ['cookies', 'auth', 'profile', 'storage', 'meta']),
          readQuarantine(context, session),
        ]);
        if ([...slates.values()].every((s) => s.version === 0) && quarantine === undefined) {
          throw new InputError(
            'not_found',
            `no state for session ${JSON.stringify(sessionId)} of tenant ${keysOf.tenant} (see crawlfleet sessions list)`,
          );
        }
        const { jar, dropped } = await SessionCookieJar.fromSlate(slates.get('cookies')?.value);
        const auth = normalizeAuth(slates.get('auth')?.value);
        const profile = slates.get('profile')?.value as SessionProfile | undefined;
        const view = {
          tenant: keysOf.tenant,
          sessionId,
          cookies: await jar.describe(),
          expiredCookies: dropped,
          // The origins whose localStorage render jobs kept, and how many items each: never the values.
          storage: Object.entries((slates.get('storage')?.value ?? {}) as Record<string, unknown[]>).map(
            ([origin, items]) => ({ origin, items: Array.isArray(items) ? items.length : 0 }),
          ),
          // Whether the session holds tokens, never their values.
          auth:
            auth === undefined
              ? null
              : {
                  loggedInAt: auth.loggedInAt ?? null,
                  expiresAt: auth.expiresAt ?? null,
                  token: auth.token !== undefined,
                  refreshToken: auth.refreshToken !== undefined,
                  refused:
                    auth.refused === undefined
                      ? null
                      : {
                          at: auth.refused.at,
                          until: auth.refused.until,
                          times: auth.refused.count,
                          status: auth.refused.status ?? null,
                          message: auth.refused.message,
                        },
                },
          meta: (slates.get('meta')?.value as SessionMeta | undefined) ?? null,
          // The identity: the proxy as scheme://host:port (never its credentials) and the profile.
          proxy: profile?.proxy ?? null,
          profile:
            profile === undefined
              ? null
              : {
                  userAgent: profile.userAgent,
                  // The TLS handshake's browser family (profiles older than it: the user agent's).
                  tls: profile.tls ?? tlsFamilyOf(profile.userAgent),
                  createdAt: profile.createdAt,
                  browserHeaders: profile.headers !== undefined,
                },
          quarantine:
            quarantine === undefined
              ? null
              : { ...quarantine, reason: await quarantineReason(context, session, quarantine.since) },
          slates: Object.fromEntries(
            [...slates.values()].map((s) => [
              s.name,
              {
                version: s.version,
                ...(s.discarded ? { unreadable: s.discarded.reason } : {}),
                ...(s.discardedFields ? { unreadableFields: s.discardedFields.length } : {}),
              },
            ]),
          ),
        };
        if (options.json) {
          printJson(view);
          return;
        }
        const lines = [`session ${sessionId} (tenant ${keysOf.tenant})`];
        if (view.meta)
          lines.push(
            `  jobs ${view.meta.jobs}, errors ${view.meta.errors}, created ${view.meta.createdAt}, last used ${view.meta.lastUsedAt}`,
          );
        if (view.quarantine)
          lines.push(
            `  quarantined until ${view.quarantine.until} (${view.quarantine.reason ?? 'reason unavailable: the audit stream no longer holds it'}), since ${view.quarantine.since}: its jobs go to the DLQ as session_quarantined`,
          );
        if (view.profile)
          lines.push(
            `  identity: ${view.profile.userAgent}${view.profile.browserHeaders ? ' (browser headers)' : ''}, TLS as ${view.profile.tls}${view.proxy === null ? '' : `, through ${view.proxy}`}`,
          );
        lines.push(`  auth: ${describeAuth(view.auth)}`);
        lines.push(`  cookies (${view.cookies.length}):`);
        for (const c of view.cookies)
          lines.push(
            `    ${c.name}  ${c.domain ?? ''}${c.path ?? ''}  ${c.expires ?? 'session'}${c.secure ? '  secure' : ''}${c.httpOnly ? '  httpOnly' : ''}`,
          );
        if (view.storage.length > 0)
          lines.push(
            `  browser storage: ${view.storage.map((entry) => `${entry.origin} (${entry.items} items)`).join(', ')}`,
          );
        for (const [name, s] of Object.entries(view.slates))
          if ('unreadable' in s) lines.push(`  slate ${name} is unreadable (${s.unreadable}): it will be replaced`);
        process.stdout.write(`${lines.join('\n')}\n`);
      } finally {
        await context.close();
      }
    });

  sessions
    .command('purge')
    .description("delete a session's state (cookies, auth, profile, workflows, meta)")
    .argument('<session>', 'the session id')
    .option('-t, --tenant <name>', 'the tenant', DEFAULT_TENANT)
    .action(async (sessionId: string, options: { tenant: string }, command: Command) => {
      const tenant = checkName('--tenant', options.tenant);
      checkName('session', sessionId);
      const context = await openSessionContext(command.optsWithGlobals<GlobalOptions>());
      try {
        const deleted = await new SessionAdmin(context.redis, context.keys).purge(
          context.keys.session(tenant, sessionId),
        );
        say(
          deleted === 0
            ? `session ${sessionId} (tenant ${tenant}) had no state`
            : `purged session ${sessionId} (tenant ${tenant}): ${deleted} keys`,
        );
      } finally {
        await context.close();
      }
    });
}

/** The session's quarantine flag: set when (its value), and until when (its TTL); undefined when not set. */
async function readQuarantine(
  context: CommandContext,
  session: SessionKeys,
): Promise<{ since: string; until: string } | undefined> {
  const answers = (await context.redis.pipeline().get(session.quarantine).pttl(session.quarantine).exec()) ?? [];
  const since = answers[0]?.[1];
  const ttl = answers[1]?.[1];
  if (typeof since !== 'string' || typeof ttl !== 'number' || ttl < 0) return undefined;
  return { since, until: new Date(Date.now() + ttl).toISOString() };
}

/**
 * Why the session was quarantined: the reason of its latest `quarantine` audit event, when that
 * event belongs to this quarantine (the flag only holds the time). Null once the capped stream
 * no longer holds it. The audit stream is on the fleet Redis, which may not be the session one.
 */
async function quarantineReason(context: CommandContext, session: SessionKeys, since: string): Promise<string | null> {
  const { env } = context;
  const fleet = env.sessionRedisUrl === env.redisUrl ? context : await connect(context, env.redisUrl);
  try {
    const hasher = await loadSessionHasher(fleet.redis, fleet.keys.sessionHashKey);
    const [event] = await new AuditLog(fleet.redis, fleet.keys, fleet.config.retention.auditMaxLen).query({
      session: hasher.hash(session.tenant, session.sessionId),
      kind: 'quarantine',
      limit: 1,
    });
    return event !== undefined && Date.parse(event.at) >= Date.parse(since) ? (event.reason ?? null) : null;
  } finally {
    if (fleet !== context) await fleet.close();
  }
}

/** One line about a session's login: when, until when, with what; or its refusal and cool-down. */
function describeAuth(
  auth: {
    loggedInAt: string | null;
    expiresAt: string | null;
    token: boolean;
    refreshToken: boolean;
    refused: { until: string; times: number; status: number | null; message: string } | null;
  } | null,
): string {
  if (auth === null) return 'none';
  if (auth.refused !== null)
    return `login refused ${auth.refused.times}x (${auth.refused.message}${auth.refused.status === null ? '' : `, HTTP ${auth.refused.status}`}); no new try before ${auth.refused.until}`;
  const held = [auth.token ? 'an access token' : '', auth.refreshToken ? 'a refresh token' : ''].filter(Boolean);
  return `logged in ${auth.loggedInAt}, expires ${auth.expiresAt}${held.length > 0 ? `, holds ${held.join(' and ')}` : ''}`;
}
