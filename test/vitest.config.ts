import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['fixture/**/*.test.ts', 'integration/**/*.test.ts', 'e2e/**/*.test.ts', 'chaos/**/*.test.ts'],
    // Real Redis, real HTTP, real child processes: generous but bounded.
    testTimeout: 60_000,
    hookTimeout: 30_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
