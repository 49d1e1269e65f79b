export { type BrowserCookie, cookieChanges, type DroppedCookie, toBrowserCookies } from './browser-cookies.js';
export { browserError } from './browser-errors.js';
export { BrowserFetcher, type BrowserFetcherOptions, type FormFill } from './browser-fetcher.js';
export { BrowserPool, type BrowserPoolOptions, chromiumMemoryMb } from './browser-pool.js';
export { BrowserRuntime, type BrowserRuntimeOptions, LazyBrowserLogin } from './browser-runtime.js';
export {
  BrowserUnavailableError,
  CHROMIUM_ARGS,
  chromiumPath,
  DEFAULT_CHROMIUM,
  launchChromium,
} from './chromium.js';
export { EgressGuard, type EgressLease, type EgressRules } from './egress-guard.js';
export { storageChanges, storageOrigins } from './origin-storage.js';
