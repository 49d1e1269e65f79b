import type { FetchJob } from '@crawlfleet/core';
import { hashSessionId } from '@crawlfleet/sessions';
import type { Job } from 'bullmq';

/** Who an audit event is about: the job, its tenant, and its session by hashed id only. */
export function auditSubject(job: Job, data: FetchJob | undefined) {
  return {
    jobId: String(job.id),
    tenant: data?.tenant,
    session: data?.sessionId === undefined ? undefined : hashSessionId(data.tenant, data.sessionId),
    url: data?.url,
  };
}
