/**
 * Merges streams of outbox entries, each in entry-id order (one per shard), into one in entry-id
 * order: a stream entry id is `<ms>-<seq>`, so the merge is by time, then by sequence. Reads one
 * entry ahead of each stream, never more, so memory stays flat whatever the outbox holds.
 */
export async function* mergeByEntryId<T extends { entryId: string }>(
  streams: ReadonlyArray<AsyncGenerator<T>>,
): AsyncGenerator<T> {
  if (streams.length === 1) {
    yield* streams[0] as AsyncGenerator<T>;
    return;
  }
  const heads = await Promise.all(streams.map((stream) => stream.next()));
  for (;;) {
    let next = -1;
    for (const [i, head] of heads.entries()) {
      if (head.done) continue;
      const current = heads[next];
      if (
        next === -1 ||
        (current !== undefined && !current.done && compareIds(head.value.entryId, current.value.entryId) < 0)
      )
        next = i;
    }
    if (next === -1) return;
    const head = heads[next] as IteratorYieldResult<T>;
    yield head.value;
    heads[next] = await (streams[next] as AsyncGenerator<T>).next();
  }
}

/** Orders two stream entry ids (`<ms>-<seq>`). */
export function compareIds(a: string, b: string): number {
  const [aMs = 0, aSeq = 0] = a.split('-').map(Number);
  const [bMs = 0, bSeq = 0] = b.split('-').map(Number);
  return aMs - bMs || aSeq - bSeq;
}
