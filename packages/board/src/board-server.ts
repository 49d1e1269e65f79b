import type { Server } from 'node:http';
import { createBullBoard } from '@bull-board/api';
import { ExpressAdapter } from '@bull-board/express';
import type { CrawlfleetConfig, KeyLayout, RedisClient } from '@crawlfleet/core';
import { createLogger, type Logger } from '@crawlfleet/log';
import express from 'express';
import type { BoardAuth } from './board-auth.js';
import type { FailurePolicy } from './failure-policy.js';
import { BoardReplay, crawlAdapter, deadLetterAdapter } from './replaying-adapter.js';
import { securityHeaders } from './security-headers.js';
import { requireBoardAuth } from './sign-in-guard.js';

export interface BoardOptions {
  connection: RedisClient;
  keys: KeyLayout;
  /** For replays: the job defaults and tenants `crawl` jobs are enqueued with, and audit retention. */
  config: CrawlfleetConfig;
  auth: BoardAuth;
  /** Mount both queues read-only: no retry, remove or other action. */
  readOnly?: boolean;
  /** Default 127.0.0.1: the board is for operators, not the world. */
  host?: string;
  port: number;
  /** Slow-down and lock-out of failed sign-ins; defaults in `FailurePolicy`. */
  failurePolicy?: FailurePolicy | undefined;
  /** Lock-outs are logged here; a `board` logger on stdout by default. */
  logger?: Logger;
}

export interface RunningBoard {
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Bull Board for `crawl` and `crawl-dlq`. Every request, static assets and the API included,
 * passes the authentication guard and gets the security headers. Jobs are named by their URL;
 * dead letters by class, reason and URL. Retry on a dead letter (or on a failed crawl job that
 * has one) is a replay, the same as `crawlfleet dlq replay`, never a retry inside crawl-dlq.
 */
export async function startBoard(options: BoardOptions): Promise<RunningBoard> {
  const { connection, keys } = options;
  // First: a wrong failure policy is refused before anything is opened.
  const guard = requireBoardAuth({
    auth: options.auth,
    failurePolicy: options.failurePolicy,
    logger: options.logger ?? createLogger({ name: 'board' }),
  });
  const readOnlyMode = options.readOnly ?? false;
  const replay = new BoardReplay(connection, keys, options.config);
  // The crawl and render queue of each shard (replays go back to them): a fleet of several shards lists each, named by its shard.
  const sharded = keys.shards.length > 1;
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath('/');
  createBullBoard({
    queues: [
      ...replay.queues.shards.flatMap(({ crawl, render }, index) => {
        const of = sharded ? { prefix: `shard${index}-` } : {};
        const on = sharded ? ` (shard ${index}, ${keys.shards[index]?.tag})` : '';
        return [
          crawlAdapter(crawl, replay, {
            ...of,
            readOnlyMode,
            displayName: `crawl${on}`,
            description: 'fetch jobs, named by URL',
          }),
          crawlAdapter(render, replay, {
            ...of,
            readOnlyMode,
            displayName: `crawl-render${on}`,
            description: 'render jobs (--render), taken by browser workers, named by URL',
          }),
        ];
      }),
      deadLetterAdapter(replay, {
        readOnlyMode,
        displayName: 'crawl-dlq',
        description: 'dead letters: class/reason and URL; Retry replays the job on crawl',
      }),
    ],
    serverAdapter,
    options: { uiConfig: { boardTitle: 'crawlfleet' } },
  });
  const app = express();
  app.disable('x-powered-by');
  app.use(securityHeaders);
  app.use(guard);
  const bullBoard = serverAdapter.getRouter() as express.Express;
  // Bull Board's router is an Express app of its own, which would say X-Powered-By again.
  bullBoard.disable('x-powered-by');
  app.use('/', bullBoard);
  const host = options.host ?? '127.0.0.1';
  const server = await new Promise<Server>((resolve, reject) => {
    const listening = app.listen(options.port, host, () => resolve(listening));
    listening.once('error', reject);
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/`,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await replay.close();
    },
  };
}
