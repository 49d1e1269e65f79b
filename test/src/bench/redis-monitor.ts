import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Redis } from 'ioredis';

/** sha1 of a Lua script: what EVALSHA names it by. */
export function scriptSha(lua: string): string {
  return createHash('sha1').update(lua).digest('hex');
}

interface BullScript {
  name: string;
  content: string;
}

function isBullScript(value: unknown): value is BullScript {
  const script = value as Partial<BullScript> | undefined;
  return typeof script?.name === 'string' && typeof script.content === 'string';
}

/** A Lua file scripts are made of: its name (`pkg:file`) and its content. */
export type ScriptFile = readonly [name: string, content: string];

/**
 * Names of the Lua scripts a worker may run, by sha1 (what EVALSHA names them by): BullMQ's
 * (`bullmq:moveToFinished`, ...) and crawlfleet's own `lua/*.lua` files (`slates:commit-session`,
 * ...), so EVALSHA lines read by name. A script built of several files (helpers first, as the
 * slate store builds its scripts) has a sha of its own: it is named after its last file once its
 * body is seen (`learn`), in an EVAL (what ioredis sends for a script's first call on a
 * connection) or a SCRIPT LOAD.
 */
export class ScriptNames {
  private readonly bySha = new Map<string, string>();
  private files: readonly ScriptFile[] = [];

  /** `load` reads the files; it is read again when a body matches none (a file changed since). */
  constructor(private readonly load: () => readonly ScriptFile[]) {
    this.reload();
  }

  get(sha: string): string | undefined {
    return this.bySha.get(sha);
  }

  /** The name of a script whose body was seen, learning it when it ends with a known file. */
  learn(body: string): string | undefined {
    const sha = scriptSha(body);
    const named = () => this.bySha.get(sha) ?? this.lastFileOf(body);
    let name = named();
    if (name === undefined) {
      this.reload();
      name = named();
    }
    if (name !== undefined) this.bySha.set(sha, name);
    return name;
  }

  private lastFileOf(body: string): string | undefined {
    const end = body.trimEnd();
    return this.files.find(([, content]) => content.trim() !== '' && end.endsWith(content.trimEnd()))?.[0];
  }

  private reload(): void {
    this.files = this.load();
    for (const [name, content] of this.files) this.bySha.set(scriptSha(content), name);
  }
}

/** Every Lua file a worker's scripts are made of, from BullMQ and from this repository's packages. */
function scriptFiles(): ScriptFile[] {
  const files: ScriptFile[] = [];
  // BullMQ has no exports map and ships its scripts as one module per script, content verbatim.
  const bull = createRequire(import.meta.url)('bullmq/dist/cjs/scripts/index.js') as Record<string, unknown>;
  for (const script of Object.values(bull))
    if (isBullScript(script)) files.push([`bullmq:${script.name}`, script.content]);
  const packages = new URL('../../../packages/', import.meta.url);
  for (const pkg of readdirSync(packages)) {
    const dir = new URL(`${pkg}/lua/`, packages);
    if (!existsSync(dir)) continue;
    for (const file of readdirSync(dir).filter((name) => name.endsWith('.lua')))
      files.push([`${pkg}:${file.slice(0, -'.lua'.length)}`, readFileSync(new URL(file, dir), 'utf8')]);
  }
  return files;
}

/** Names of every script a worker may run (see `ScriptNames`). */
export function knownScripts(): ScriptNames {
  return new ScriptNames(scriptFiles);
}

/**
 * Undoes the quoting MONITOR applies to an argument (Redis' sdscatrepr), after ioredis has
 * already turned `\"` back into `"`: `\\`, `\n`, `\r`, `\t`, `\a`, `\b` and `\xHH`.
 */
export function unescapeMonitorArg(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (char !== '\\' || i + 1 >= text.length) {
      out += char;
      continue;
    }
    const next = text[++i];
    if (next === 'n') out += '\n';
    else if (next === 'r') out += '\r';
    else if (next === 't') out += '\t';
    else if (next === 'a') out += '\x07';
    else if (next === 'b') out += '\b';
    else if (next === 'x' && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 1, i + 3))) {
      out += String.fromCharCode(Number.parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else out += next;
  }
  return out;
}

/** Commands whose first argument says what they do. */
const WITH_SUBCOMMAND = new Set(['SCRIPT', 'CLIENT', 'CONFIG', 'OBJECT', 'XINFO', 'COMMAND', 'FUNCTION', 'MEMORY']);

/** `HMGET`, `EVALSHA bullmq:moveToFinished`, `CLIENT SETNAME`, ... */
export function commandName(args: readonly string[], scripts: ScriptNames): string {
  const command = (args[0] ?? '?').toUpperCase();
  const first = args[1] ?? '';
  if (command === 'EVALSHA' || command === 'EVALSHA_RO')
    return `${command} ${scripts.get(first.toLowerCase()) ?? `?${first.slice(0, 8)}`}`;
  if (command === 'EVAL' || command === 'EVAL_RO') {
    const body = unescapeMonitorArg(first);
    return `${command} ${scripts.learn(body) ?? `?${scriptSha(body).slice(0, 8)}`}`;
  }
  if (command === 'SCRIPT' && first.toUpperCase() === 'LOAD') scripts.learn(unescapeMonitorArg(args[2] ?? ''));
  return WITH_SUBCOMMAND.has(command) ? `${command} ${first.toUpperCase()}` : command;
}

/** `127.0.0.1:port` of a connection, as MONITOR names its client. */
export async function clientAddress(redis: Redis): Promise<string> {
  const info = String(await redis.client('INFO'));
  const address = /(?:^|\s)addr=(\S+)/.exec(info)?.[1];
  if (address === undefined) throw new Error(`no addr= in CLIENT INFO: ${info}`);
  return address;
}

/**
 * A MONITOR connection that records, in order, the name of every command a client sent. Lines
 * Redis marks as run from Lua (`[0 lua]`) are counted apart, not recorded: a script is one
 * command however much it does inside. Lines of `excluded` client addresses (the benchmark's
 * own connections) are dropped. A pipelined command is one line, so it counts as one.
 */
export class CommandMonitor {
  /** Names of the commands clients sent, in the order Redis ran them. */
  readonly commands: string[] = [];
  luaCommands = 0;
  excludedCommands = 0;

  private constructor(
    private readonly connection: Redis,
    private readonly scripts: ScriptNames,
    private readonly excluded: ReadonlySet<string>,
  ) {
    connection.on('monitor', (_time: string, args: string[], source: string) => this.record(args, source));
  }

  /** Starts monitoring; only commands that run after this resolves are seen. */
  static async start(url: string, scripts: ScriptNames, excluded: ReadonlySet<string>): Promise<CommandMonitor> {
    const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    const monitoring = await redis.monitor();
    redis.disconnect();
    return new CommandMonitor(monitoring, scripts, excluded);
  }

  private record(args: string[], source: string): void {
    if (source === 'lua') this.luaCommands++;
    else if (this.excluded.has(source)) this.excludedCommands++;
    else this.commands.push(commandName(args, this.scripts));
  }

  /** Resolves once a command named `name` has been seen (MONITOR lines arrive a little late). */
  async waitFor(name: string, timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.commands.includes(name)) {
      if (Date.now() > deadline) throw new Error(`MONITOR never showed ${name}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  stop(): void {
    this.connection.disconnect();
  }
}

/** Per-command counts of `commands`, most frequent first. */
export function tally(commands: readonly string[]): Array<[string, number]> {
  const counts = new Map<string, number>();
  for (const name of commands) counts.set(name, (counts.get(name) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}

/**
 * Checks the counting on a workload whose answer is known before any figure relies on it: three
 * plain commands, a pipeline of three, one EVAL whose two redis.call lines must count as Lua,
 * then the EVALSHA of the same script, and commands from an excluded connection. Throws on any
 * difference.
 */
export async function verifyMonitorCounting(url: string): Promise<void> {
  const lua = 'local v = ARGV[1] .. "\\n"\nredis.call("SET", KEYS[1], v)\nreturn redis.call("GET", KEYS[1])\n';
  const scripts = new ScriptNames(() => [['check:set-get', lua]]);
  const client = new Redis(url, { maxRetriesPerRequest: 0 });
  const other = new Redis(url, { maxRetriesPerRequest: 0 });
  let monitor: CommandMonitor | undefined;
  try {
    await Promise.all([client.ping(), other.ping()]);
    monitor = await CommandMonitor.start(url, scripts, new Set([await clientAddress(other)]));
    await client.set('check:a', '1');
    await client.get('check:a');
    await client.del('check:a');
    await client.pipeline().incr('check:b').incr('check:b').get('check:b').exec();
    await other.get('check:a');
    await client.eval(lua, 1, 'check:c', 'x');
    await client.evalsha(scriptSha(lua), 1, 'check:c', 'y');
    await other.del('check:b', 'check:c');
    await client.echo('check-done');
    await monitor.waitFor('ECHO');
    const expected = [
      'SET',
      'GET',
      'DEL',
      'INCR',
      'INCR',
      'GET',
      'EVAL check:set-get',
      'EVALSHA check:set-get',
      'ECHO',
    ];
    const seen = monitor.commands.join(',');
    if (seen !== expected.join(',') || monitor.luaCommands !== 4 || monitor.excludedCommands !== 2) {
      throw new Error(
        `MONITOR counting is off: saw [${seen}], ${monitor.luaCommands} Lua lines and ${monitor.excludedCommands} excluded; expected [${expected.join(',')}], 4 and 2`,
      );
    }
  } finally {
    monitor?.stop();
    client.disconnect();
    other.disconnect();
  }
}
