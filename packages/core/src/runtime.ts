/**
 * Node flags every crawlfleet process starts with: the bins' shebangs, the image's commands and
 * the Kubernetes and compose files carry them (test/integration/infra.test.ts checks that they
 * match this list).
 *
 * `--max-old-space-size=1536`: the heap's limit, with room for 100 jobs holding 2 MiB result bodies
 * at once. With node's default on a large machine (a quarter of its memory) V8 also let the heap
 * grow to four times the live data (about 30 MB) between full collections, and a worker peaked
 * around 215 MB RSS; the next two flags set the growth instead.
 *
 * `--max-semi-space-size=32` (the young generation's two halves, in MB; node's default here is 16):
 * at concurrency 100 a job's objects live across one or two young collections, and most of what
 * survives two is promoted, to be collected again by a full collection. With halves twice as large
 * young collections come half as often, fewer objects live through two of them, and a warm worker
 * ran 64 young and 7 full collections per 10,000 jobs instead of 111-120 and 8-12. In alternating
 * runs against the bare worker (8 rounds) it did more jobs per second in 7 of them (median ratio
 * 0.87 instead of 0.81; the machine is noisy, another 6 rounds gave 0.75 for both this and the next
 * flag's alternative). It costs 32 MB of address space and about 25 MB of peak RSS.
 *
 * `--heap-growing-percent=50`: the old generation grows by half its live size between full
 * collections, whatever the limit; that pays for the larger young generation (peak RSS 186-192 MB
 * instead of 195-203) and keeps the limit high for pages with large bodies. Capping the limit at
 * 768 MB gave the same RSS and throughput, with less room.
 *
 * V8's GC helper threads stay on (no `--single-threaded-gc`, which crawlfleet used to pass): with
 * them a worker peaked 15-20 MB lower (171-181 MB against 185-198 at the same loads) and
 * did as many jobs per second on the headline and more on pages that change a cookie on every
 * response, where a job allocates most (docs/scaling.md).
 */
export const NODE_FLAGS: readonly string[] = [
  '--max-old-space-size=1536',
  '--max-semi-space-size=32',
  '--heap-growing-percent=50',
];
