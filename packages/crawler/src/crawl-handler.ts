import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { InputError } from '@crawlfleet/core';
import type { CheerioAPI } from 'cheerio';

/** What a handler is given for one page of a named crawl. */
export interface HandlerContext {
  request: { url: string; label: string | undefined; depth: number; userData: Record<string, unknown> };
  response: {
    /** Where the page ended up, after redirects. */
    url: string;
    status: number;
    headers: Record<string, string | string[] | undefined>;
    body: Buffer;
    text(): string;
    json(): unknown;
  };
  /** The page parsed (cheerio), built the first time it is read. */
  readonly $: CheerioAPI;
  /**
   * For a render job (`--render`): the page, still open in the browser (Playwright's `Page`), to
   * click, fill or read what the HTML alone does not say. What it changes in the session's cookies
   * and storage is kept when the handler is done. Undefined for HTTP jobs.
   */
  page: unknown;
  /**
   * Adds URLs to the crawl, one level deeper (its max depth and max pages apply; its follow strategy
   * does not); relative ones resolve against the page. Answers how many were new to the page.
   */
  enqueue(
    requests: string | EnqueueRequest | ReadonlyArray<string | EnqueueRequest>,
    options?: { label?: string; userData?: Record<string, unknown>; render?: boolean },
  ): number;
  /** Adds a record (JSON) to the page's result: written with it, once. */
  push(record: unknown): void;
  /** The session's workflow slates (multi-step state), when the job has a session. */
  session: { workflow(name: string): Promise<unknown>; setWorkflow(name: string, state: unknown): void } | undefined;
  log: {
    info(message: string, fields?: Record<string, unknown>): void;
    warn(message: string, fields?: Record<string, unknown>): void;
  };
}

export interface EnqueueRequest {
  url: string;
  label?: string;
  userData?: Record<string, unknown>;
  /** Render it in a browser (true) or fetch it over HTTP (false); default: as the page was. */
  render?: boolean;
}

export type Handler = (context: HandlerContext) => unknown;

/** A loaded handler module: the handler of a label, else its default. */
export interface CrawlHandler {
  /** The module's path, for messages. */
  readonly file: string;
  route(label: string | undefined): Handler | undefined;
  /** Parses a page for `$` (cheerio, loaded with the handler). */
  load(html: string): CheerioAPI;
}

/**
 * Loads a handler module: an ES module (`.mjs`, `.js`) or TypeScript (`.ts`, `.mts`, run through
 * `tsx`, a maintained loader, loaded only then). It exports a router: `export default` a function
 * (every page), or an object of functions by label with `default` for pages without one. What
 * does not load, or exports no handler, is refused with one line (exit code 2): a worker does not
 * start on it.
 */
export async function loadHandler(file: string): Promise<CrawlHandler> {
  const path = resolve(file);
  if (!existsSync(path)) throw new InputError('invalid_handler', `--handler ${file}: no such file`);
  let module: { default?: unknown };
  try {
    if (/\.[cm]?tsx?$/.test(path)) {
      const { tsImport } = await import('tsx/esm/api');
      module = (await tsImport(pathToFileURL(path).href, import.meta.url)) as { default?: unknown };
    } else {
      module = (await import(pathToFileURL(path).href)) as { default?: unknown };
    }
  } catch (error) {
    const message = ((error as Error).message ?? String(error)).split('\n')[0];
    throw new InputError('invalid_handler', `--handler ${file} does not load: ${message}`);
  }
  // tsx hands a CommonJS-shaped namespace to some modules: their default sits one level down.
  let exported = module.default;
  if (exported !== null && typeof exported === 'object' && 'default' in exported && !isRouter(exported))
    exported = (exported as { default: unknown }).default;
  const { load } = await import('cheerio');
  if (typeof exported === 'function') {
    const only = exported as Handler;
    return { file, route: () => only, load: (html) => load(html) };
  }
  if (isRouter(exported)) {
    const router = exported as Record<string, Handler>;
    return {
      file,
      route: (label) => (label === undefined ? router.default : (router[label] ?? router.default)),
      load: (html) => load(html),
    };
  }
  throw new InputError(
    'invalid_handler',
    `--handler ${file} exports no handler: export default a function, or an object of functions by label (with default)`,
  );
}

function isRouter(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return false;
  const entries = Object.entries(value);
  return entries.length > 0 && entries.every(([, item]) => typeof item === 'function');
}
