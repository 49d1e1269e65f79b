import type { Server } from 'node:http';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { CRAWL_QUEUE, DLQ_QUEUE, type KeyLayout } from '@crawlfleet/core';
import { Queue } from 'bullmq';
import express from 'express';
import type { Redis } from 'ioredis';
import { type BoardAuth, type FailurePolicy, requireBoardAuth } from './board-auth.js';
import { securityHeaders } from './security-headers.js';

export interface BoardOptions {
  connection: Redis;
  keys: KeyLayout;
  auth: BoardAuth;
  /** Mount the crawl queue read-only too (the DLQ always is: replay goes through `dlq replay`). */
  readOnly?: boolean;
  /** Default 127.0.0.1: the board is for operators, not the world. */
  host?: string;
  port: number;
  failurePolicy?: FailurePolicy;
}

export interface RunningBoard {
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Bull Board for `crawl` and `crawl-dlq`. Every request, static assets and the API included,
 * passes the authentication guard and gets the security headers. Jobs are named by their URL;
 * dead letters by class, reason and URL.
 */
export async function startBoard(options: BoardOptions): Promise<RunningBoard> {
  const { connection, keys } = options;
  const crawl = new Queue(CRAWL_QUEUE, { connection, prefix: keys.bullPrefix });
  const dlq = new Queue(DLQ_QUEUE, { connection, prefix: keys.bullPrefix });
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath('/');
  createBullBoard({
    queues: [
      new BullMQAdapter(crawl, {
        readOnlyMode: options.readOnly ?? false,
        displayName: 'crawl',
        description: 'fetch jobs, named by URL',
      }),
      // A retry inside the DLQ queue would bypass replay (fresh attempts, ledger, audit).
      new BullMQAdapter(dlq, {
        readOnlyMode: true,
        displayName: 'crawl-dlq',
        description: 'dead letters: class/reason and URL; replay with crawlfleet dlq replay',
      }),
    ],
    serverAdapter,
    options: { uiConfig: { boardTitle: 'crawlfleet' } },
  });
  const app = express();
  app.disable('x-powered-by');
  app.use(securityHeaders);
  app.use(requireBoardAuth(options.auth, options.failurePolicy));
  app.use('/', serverAdapter.getRouter());
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
      await Promise.all([crawl.close(), dlq.close()]);
    },
  };
}
