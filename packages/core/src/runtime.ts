/**
 * Node flags every crawlfleet process starts with: the bins' shebangs, the image's commands and
 * the Kubernetes and compose files carry them (test/integration/infra.test.ts checks that they
 * match this list).
 *
 * `--max-semi-space-size=8`: V8's young generation sized for a worker with ~100 jobs in flight.
 * Node's default (16 MB semi-spaces) lets a worker at concurrency 100 peak around 215 MB RSS
 * for the same throughput; 8 MB keeps it under 200 MB. Smaller than 8 costs throughput
 * (docs/scaling.md has the measurements).
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=8'];
