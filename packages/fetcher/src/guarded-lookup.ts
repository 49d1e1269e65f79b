import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import type { AddressPolicy } from './address-policy.js';

/**
 * A `dns.lookup` that checks every address a name resolves to before the socket connects, so a
 * name that points at a private address (or is re-pointed there later) is refused at connect
 * time, not just at submit time. Any refused address refuses the name.
 */
export function guardedLookup(policy: AddressPolicy): LookupFunction {
  return ((
    hostname: string,
    options: { all?: boolean; family?: number } | undefined,
    callback: (...args: unknown[]) => void,
  ) => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses: LookupAddress[]) => {
      if (error) return callback(error);
      try {
        for (const { address } of addresses) policy.check(hostname, address);
      } catch (refused) {
        return callback(refused);
      }
      if (options?.all) return callback(null, addresses);
      const first = addresses[0];
      if (first === undefined)
        return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }));
      return callback(null, first.address, first.family);
    });
  }) as LookupFunction;
}
