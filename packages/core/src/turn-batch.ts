interface Waiting<Item, Answer> {
  item: Item;
  resolve: (answer: Answer) => void;
  reject: (error: unknown) => void;
}

/**
 * Items added in one turn of the event loop, sent together at its end (`setImmediate`, after
 * every I/O callback of the turn ran): one command for what the jobs finishing in that turn each
 * need written, and each caller gets its own item's answer. `split` cuts a turn's items into
 * several sends (a bound on a command's size); by default a turn is one send.
 */
export class TurnBatch<Item, Answer> {
  private pending: Array<Waiting<Item, Answer>> = [];

  constructor(
    private readonly send: (items: readonly Item[]) => Promise<readonly Answer[]>,
    private readonly split: (items: readonly Item[]) => number[] = (items) => [items.length],
  ) {}

  add(item: Item): Promise<Answer> {
    return new Promise<Answer>((resolve, reject) => {
      if (this.pending.length === 0) setImmediate(() => this.flush());
      this.pending.push({ item, resolve, reject });
    });
  }

  private flush(): void {
    const all = this.pending;
    this.pending = [];
    let start = 0;
    for (const size of this.split(all.map((waiting) => waiting.item))) {
      const batch = all.slice(start, start + size);
      start += size;
      this.send(batch.map((waiting) => waiting.item)).then(
        (answers) => {
          for (const [i, waiting] of batch.entries()) waiting.resolve(answers[i] as Answer);
        },
        (error: unknown) => {
          for (const waiting of batch) waiting.reject(error);
        },
      );
    }
  }
}
