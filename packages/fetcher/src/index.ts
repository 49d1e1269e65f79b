export { AddressNotAllowedError, AddressPolicy } from './address-policy.js';
export {
  BodyTooLargeError,
  type FetchedPage,
  Fetcher,
  type FetchRequest,
  type FetchTenant,
  FetchTimeoutError,
  type NegotiatedTls,
  type PageFetcher,
  type ProxyEndpoint,
  UnsafeRedirectError,
} from './fetcher.js';
export { guardedLookup } from './guarded-lookup.js';
export { TLS_FAMILIES, type TlsFamily, type TlsOptions, tlsFamilyOf, tlsOptions } from './tls-profiles.js';
