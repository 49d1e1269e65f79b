import { DelayedError, type Job } from 'bullmq';
import { RetryLaterError } from './job-errors.js';

/** Moves the job to delayed for `waitMs` without spending an attempt (it never sleeps in a slot). */
export async function holdBack(job: Job, token: string | undefined, waitMs: number, reason: string): Promise<never> {
  if (token === undefined) {
    throw new RetryLaterError(`held back (${reason}) for ${Math.round(waitMs)} ms`, waitMs, {
      failureClass: 'recoverable',
      reason,
    });
  }
  await job.moveToDelayed(Date.now() + Math.round(waitMs), token);
  throw new DelayedError();
}
