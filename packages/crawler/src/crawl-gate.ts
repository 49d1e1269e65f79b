import type { FetchJob } from '@crawlfleet/core';
import type { CrawlState, CrawlStore } from '@crawlfleet/crawls';

/** How often a worker reads the states of the crawls its jobs belong to. */
const REFRESH_MS = 500;
/** How long a paused crawl's job waits before it looks again (no attempt spent). */
export const PAUSED_WAIT_MS = 2_000;

/**
 * Whether a named crawl's job may run: `running` goes on, `paused` waits (moved to delayed with no
 * attempt spent, and looks again two seconds later), `cancelled` ends with nothing fetched and
 * nothing dead-lettered. A worker reads its crawls' states twice a second in one round trip, so
 * `crawls pause` stops new fetches across the fleet within a second and the job path asks Redis
 * nothing; the first job of a crawl it has not seen reads the state once.
 */
export class CrawlGate {
  private readonly states = new Map<string, CrawlState>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly crawls: CrawlStore) {}

  async stateOf(data: FetchJob): Promise<CrawlState> {
    const name = data.crawl?.name;
    if (name === undefined) return 'running';
    let state = this.states.get(name);
    if (state === undefined) {
      state = await this.crawls.state(name);
      this.states.set(name, state);
      this.timer ??= setInterval(() => void this.refresh().catch(() => undefined), REFRESH_MS).unref();
    }
    return state;
  }

  private async refresh(): Promise<void> {
    const names = [...this.states.keys()];
    const states = await this.crawls.states(names);
    for (const [i, name] of names.entries()) this.states.set(name, states[i] ?? 'running');
  }

  close(): void {
    clearInterval(this.timer);
  }
}
