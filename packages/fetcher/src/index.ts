export { AddressNotAllowedError, AddressPolicy } from './address-policy.js';
export {
  BodyTooLargeError,
  checkName,
  checkProxyAddress,
  type FetchedPage,
  Fetcher,
  type FetchRequest,
  type FetchTenant,
  FetchTimeoutError,
  type NegotiatedTls,
  type OriginStorage,
  type PageFetcher,
  type PageSession,
  type ProxyEndpoint,
  type RenderedPage,
  type SessionCookie,
  UnsafeRedirectError,
} from './fetcher.js';
export { guardedLookup } from './guarded-lookup.js';
export { TLS_FAMILIES, type TlsFamily, type TlsOptions, tlsFamilyOf, tlsOptions } from './tls-profiles.js';
