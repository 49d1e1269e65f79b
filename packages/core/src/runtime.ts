/**
 * Node flags every crawlfleet process starts with: the bins' shebangs, the image's commands and
 * the Kubernetes and compose files carry them (test/integration/infra.test.ts checks that they
 * match this list).
 *
 * `--max-old-space-size=1536`: V8 sizes how far the old generation may grow between full
 * collections from this limit. With node's default on a large machine (a quarter of its memory)
 * it lets the heap grow to four times the live data before collecting, and a worker at
 * concurrency 100, whose live data is about 30 MB, peaks around 215 MB RSS; with 1.5 GB it grows
 * to under twice the live data and peaks around 150 MB, at the same throughput (docs/scaling.md).
 * 1.5 GB still leaves room for 100 jobs holding 2 MiB result bodies at once.
 */
export const NODE_FLAGS: readonly string[] = ['--max-old-space-size=1536'];
