#!/usr/bin/env node
import { runBoardProcess } from '@crawlfleet/board';
import { exitCodeOf, InputError, loadConfig, oneLine, readEnvironment } from '@crawlfleet/core';

/**
 * The board process, configured by environment only: REDIS_URL, CRAWLFLEET_PREFIX,
 * CRAWLFLEET_BOARD_USER + CRAWLFLEET_BOARD_PASSWORD or CRAWLFLEET_BOARD_TOKEN,
 * CRAWLFLEET_BOARD_PORT (default 3300), CRAWLFLEET_BOARD_HOST (default 127.0.0.1),
 * CRAWLFLEET_BOARD_READ_ONLY=1, CRAWLFLEET_CONFIG (the config replays enqueue with), and the
 * sign-in lock-out: CRAWLFLEET_BOARD_MAX_FAILURES_PER_ADDRESS (10),
 * CRAWLFLEET_BOARD_MAX_FAILURES_PER_USER (20), CRAWLFLEET_BOARD_LOCKOUT_WINDOW (15m).
 */
try {
  const env = readEnvironment();
  const port = Number(process.env.CRAWLFLEET_BOARD_PORT ?? 3300);
  if (!Number.isInteger(port) || port < 1 || port > 65_535)
    throw new InputError('invalid_setting', 'CRAWLFLEET_BOARD_PORT must be a port number');
  await runBoardProcess({
    redisUrl: env.redisUrl,
    prefix: env.prefix,
    config: loadConfig(),
    port,
    host: process.env.CRAWLFLEET_BOARD_HOST,
    readOnly: process.env.CRAWLFLEET_BOARD_READ_ONLY === '1',
  });
} catch (error) {
  process.stderr.write(`crawlfleet-board: ${oneLine(error)}\n`);
  process.exitCode = exitCodeOf(error);
}
