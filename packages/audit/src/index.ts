export { AUDIT_KINDS, type AuditEvent, type AuditKind, AuditLog, type AuditQuery } from './audit-log.js';
