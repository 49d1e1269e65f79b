import type { FetchJob } from '@crawlfleet/core';
import type { SessionHasher } from '@crawlfleet/sessions';
import type { Job } from 'bullmq';

/** Who an audit event is about: the job, its tenant, and its session by hashed id only. */
export function auditSubject(job: Job, data: FetchJob | undefined, hasher: SessionHasher) {
  return {
    jobId: String(job.id),
    tenant: data?.tenant,
    session: data?.sessionId === undefined ? undefined : hasher.hash(data.tenant, data.sessionId),
    url: data?.url,
  };
}
