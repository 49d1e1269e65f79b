import { readFileSync } from 'node:fs';
import { chromiumMemoryMb } from '@crawlfleet/browser';
import { peakRssMb } from './worker-process.js';

/** The most a browser worker used while sampled, in MiB. */
export interface MemoryPeaks {
  /** The worker process's own peak RSS (VmHWM: the kernel's exact high-water mark, not sampled). */
  workerRssMb: number;
  /** The most Chromium's processes under the worker held at one sample (proportional set size). */
  chromiumMb: number;
  /** The most the worker's RSS and Chromium's PSS added up to at one sample. */
  totalMb: number;
  samples: number;
}

/** Resident set size of a live process now, from /proc (Linux). */
function rssMb(pid: number): number {
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return kb === undefined ? 0 : Number(kb) / 1024;
}

/**
 * Samples a browser worker's memory from outside it: every `everyMs`, the worker's RSS and the
 * PSS of the Chromium processes under it (`chromiumMemoryMb`, what the worker's own pool reads;
 * PSS because Chromium's processes share most of their pages, which RSS would count once per
 * process). Peaks, not averages: a fleet is sized by what a worker reaches. A peak shorter than
 * `everyMs` can fall between two samples of Chromium; the worker's own peak cannot.
 */
export class MemorySampler {
  private chromiumMb = 0;
  private totalMb = 0;
  private samples = 0;
  private readonly timer: NodeJS.Timeout;

  private constructor(
    private readonly pid: number,
    everyMs: number,
  ) {
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  static start(pid: number, everyMs = 250): MemorySampler {
    const sampler = new MemorySampler(pid, everyMs);
    sampler.sample();
    return sampler;
  }

  private sample(): void {
    try {
      const chromium = chromiumMemoryMb(this.pid);
      const worker = rssMb(this.pid);
      this.chromiumMb = Math.max(this.chromiumMb, chromium);
      this.totalMb = Math.max(this.totalMb, worker + chromium);
      this.samples++;
    } catch {
      // The worker is gone: nothing more to sample.
    }
  }

  /** Takes a last sample and stops; call while the worker still runs (its VmHWM goes with it). */
  stop(): MemoryPeaks {
    this.sample();
    this.close();
    return {
      workerRssMb: peakRssMb(this.pid),
      chromiumMb: this.chromiumMb,
      totalMb: this.totalMb,
      samples: this.samples,
    };
  }

  /** Stops sampling (again, harmlessly), for a run that failed before `stop`. */
  close(): void {
    clearInterval(this.timer);
  }
}
