import { constants } from 'node:crypto';

/**
 * The TLS handshake a session offers, by the family of its browser profile; `node` is Node's own
 * (sessions with the crawler profile, and requests without a session).
 */
export type TlsFamily = 'chrome' | 'firefox' | 'safari' | 'node';

export const TLS_FAMILIES: readonly TlsFamily[] = ['chrome', 'firefox', 'safari', 'node'];

/** What got passes to Node's TLS for a family (got's `https` options). */
export interface TlsOptions {
  minVersion: 'TLSv1.2';
  maxVersion: 'TLSv1.3';
  ciphers?: string;
  signatureAlgorithms?: string;
  ecdhCurve?: string;
  secureOptions?: number;
}

/**
 * Each browser's cipher suites, signature algorithms and groups, in its order, as far as Node's
 * OpenSSL can offer them (after the lists Apify's got-scraping keeps, checked against current
 * browsers' ClientHellos): no GREASE, no post-quantum X25519MLKEM768, no extension order. None
 * offers less than TLS 1.2.
 */
const BROWSERS: Record<Exclude<TlsFamily, 'node'>, { ciphers: string[]; sigalgs: string[]; groups: string[] }> = {
  chrome: {
    ciphers: [
      'TLS_AES_128_GCM_SHA256',
      'TLS_AES_256_GCM_SHA384',
      'TLS_CHACHA20_POLY1305_SHA256',
      'ECDHE-ECDSA-AES128-GCM-SHA256',
      'ECDHE-RSA-AES128-GCM-SHA256',
      'ECDHE-ECDSA-AES256-GCM-SHA384',
      'ECDHE-RSA-AES256-GCM-SHA384',
      'ECDHE-ECDSA-CHACHA20-POLY1305',
      'ECDHE-RSA-CHACHA20-POLY1305',
      'ECDHE-RSA-AES128-SHA',
      'ECDHE-RSA-AES256-SHA',
      'AES128-GCM-SHA256',
      'AES256-GCM-SHA384',
      'AES128-SHA',
      'AES256-SHA',
    ],
    sigalgs: [
      'ecdsa_secp256r1_sha256',
      'rsa_pss_rsae_sha256',
      'rsa_pkcs1_sha256',
      'ecdsa_secp384r1_sha384',
      'rsa_pss_rsae_sha384',
      'rsa_pkcs1_sha384',
      'rsa_pss_rsae_sha512',
      'rsa_pkcs1_sha512',
    ],
    groups: ['X25519', 'prime256v1', 'secp384r1'],
  },
  firefox: {
    ciphers: [
      'TLS_AES_128_GCM_SHA256',
      'TLS_CHACHA20_POLY1305_SHA256',
      'TLS_AES_256_GCM_SHA384',
      'ECDHE-ECDSA-AES128-GCM-SHA256',
      'ECDHE-RSA-AES128-GCM-SHA256',
      'ECDHE-ECDSA-CHACHA20-POLY1305',
      'ECDHE-RSA-CHACHA20-POLY1305',
      'ECDHE-ECDSA-AES256-GCM-SHA384',
      'ECDHE-RSA-AES256-GCM-SHA384',
      'ECDHE-ECDSA-AES256-SHA',
      'ECDHE-ECDSA-AES128-SHA',
      'ECDHE-RSA-AES128-SHA',
      'ECDHE-RSA-AES256-SHA',
      'AES128-GCM-SHA256',
      'AES256-GCM-SHA384',
      'AES128-SHA',
      'AES256-SHA',
    ],
    sigalgs: [
      'ecdsa_secp256r1_sha256',
      'ecdsa_secp384r1_sha384',
      'ecdsa_secp521r1_sha512',
      'rsa_pss_rsae_sha256',
      'rsa_pss_rsae_sha384',
      'rsa_pss_rsae_sha512',
      'rsa_pkcs1_sha256',
      'rsa_pkcs1_sha384',
      'rsa_pkcs1_sha512',
      'ECDSA+SHA1',
      'rsa_pkcs1_sha1',
    ],
    groups: ['X25519', 'prime256v1', 'secp384r1', 'secp521r1', 'ffdhe2048', 'ffdhe3072'],
  },
  safari: {
    ciphers: [
      'TLS_AES_128_GCM_SHA256',
      'TLS_AES_256_GCM_SHA384',
      'TLS_CHACHA20_POLY1305_SHA256',
      'ECDHE-ECDSA-AES256-GCM-SHA384',
      'ECDHE-ECDSA-AES128-GCM-SHA256',
      'ECDHE-ECDSA-CHACHA20-POLY1305',
      'ECDHE-RSA-AES256-GCM-SHA384',
      'ECDHE-RSA-AES128-GCM-SHA256',
      'ECDHE-RSA-CHACHA20-POLY1305',
      'ECDHE-ECDSA-AES256-SHA',
      'ECDHE-ECDSA-AES128-SHA',
      'ECDHE-RSA-AES256-SHA',
      'ECDHE-RSA-AES128-SHA',
      'AES256-GCM-SHA384',
      'AES128-GCM-SHA256',
      'AES256-SHA',
      'AES128-SHA',
    ],
    sigalgs: [
      'ecdsa_secp256r1_sha256',
      'rsa_pss_rsae_sha256',
      'rsa_pkcs1_sha256',
      'ecdsa_secp384r1_sha384',
      'ECDSA+SHA1',
      'rsa_pss_rsae_sha384',
      'rsa_pkcs1_sha384',
      'rsa_pss_rsae_sha512',
      'rsa_pkcs1_sha512',
      'RSA+SHA1',
    ],
    groups: ['X25519', 'prime256v1', 'secp384r1', 'secp521r1'],
  },
};

/** Options of every family, built once: got passes them to Node for each request. */
const OPTIONS: Record<TlsFamily, TlsOptions> = {
  node: { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3' },
  ...(Object.fromEntries(
    Object.entries(BROWSERS).map(([family, { ciphers, sigalgs, groups }]) => [
      family,
      {
        minVersion: 'TLSv1.2',
        maxVersion: 'TLSv1.3',
        ciphers: ciphers.join(':'),
        signatureAlgorithms: sigalgs.join(':'),
        ecdhCurve: groups.join(':'),
        // Browsers do not offer encrypt-then-MAC; OpenSSL does unless told not to.
        secureOptions: constants.SSL_OP_NO_ENCRYPT_THEN_MAC,
      },
    ]),
  ) as Record<Exclude<TlsFamily, 'node'>, TlsOptions>),
};

/** The TLS options of a family. */
export function tlsOptions(family: TlsFamily): TlsOptions {
  return OPTIONS[family];
}

/**
 * The family of a user agent, as sites read it: Firefox, then Chromium's (Chrome, Edge, Opera),
 * then Safari (WebKit without Chrome); anything else (a crawler's own agent) is Node's.
 */
export function tlsFamilyOf(userAgent: string): TlsFamily {
  if (/\bFirefox\//.test(userAgent)) return 'firefox';
  if (/\b(Chrome|Chromium|CriOS|Edg|OPR)\//.test(userAgent)) return 'chrome';
  if (/\bSafari\//.test(userAgent) && /\bAppleWebKit\//.test(userAgent)) return 'safari';
  return 'node';
}
