import type { Classification } from '@crawlfleet/failures';

/** Errors that, through a proxy, can only be the proxy's: the target's connection is the proxy's to make. */
const PROXY_CONNECTION_REASONS = new Set(['connection_refused', 'connection_reset', 'network_error', 'protocol_error']);

/**
 * A failure of the proxy rather than of the site, as its own reason: `proxy_auth_required` (the
 * proxy answered 407) or `proxy_unreachable` (the connection to it failed, or broke before an
 * answer). Recoverable, and never counted against the session's breaker or the host. Undefined
 * for a request sent directly, or a failure that is the site's.
 */
export function proxyFailure(classification: Classification, proxied: boolean): Classification | undefined {
  if (!proxied) return undefined;
  if (classification.status === 407) return { failureClass: 'recoverable', reason: 'proxy_auth_required', status: 407 };
  if (PROXY_CONNECTION_REASONS.has(classification.reason))
    return { failureClass: 'recoverable', reason: 'proxy_unreachable' };
  return undefined;
}

/** Whether a failure's reason is a proxy's (`proxy_*`). */
export function isProxyFailure(reason: string): boolean {
  return reason.startsWith('proxy_');
}
