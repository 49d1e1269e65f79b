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
 *
 * `--single-threaded-gc`: V8 collects on the worker's own thread instead of adding helper
 * threads. A worker shares its cores with Redis, the site's neighbours and other workers (or runs
 * under a CPU quota); the helpers' synchronisation cost more than they saved: on the 2-core
 * benchmark machine a worker does about 20% more jobs per second with them off, and a bare
 * BullMQ worker gains nothing either way (docs/scaling.md).
 */
export const NODE_FLAGS: readonly string[] = ['--max-old-space-size=1536', '--single-threaded-gc'];
