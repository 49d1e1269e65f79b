import ipaddr from 'ipaddr.js';

type Address = ipaddr.IPv4 | ipaddr.IPv6;

/** Thrown (and carried through got as `code`) when a target resolves to a refused address. */
export class AddressNotAllowedError extends Error {
  override readonly name = 'AddressNotAllowedError';
  readonly code = 'ERR_ADDRESS_NOT_ALLOWED';
}

function normalizeHost(host: string): string {
  const lower = host.toLowerCase();
  const bare = lower.startsWith('[') && lower.endsWith(']') ? lower.slice(1, -1) : lower;
  return bare.endsWith('.') ? bare.slice(0, -1) : bare;
}

/**
 * Which addresses a tenant may reach. Only globally routable unicast addresses are allowed by
 * default: loopback, private, link-local (cloud metadata lives there), carrier-grade NAT,
 * unique-local, multicast, reserved and translation ranges are refused unless the tenant's
 * `allowHosts` lists the host name, the address, or a CIDR range holding it.
 */
export class AddressPolicy {
  private readonly names = new Set<string>();
  private readonly suffixes: string[] = [];
  private readonly addresses: Address[] = [];
  private readonly ranges: Array<[Address, number]> = [];
  /** Verdicts of addresses seen lately (the policy never changes; a crawl asks about a few hosts). */
  private readonly verdicts = new Map<string, string | undefined>();

  constructor(allowHosts: readonly string[]) {
    for (const entry of allowHosts) {
      const host = normalizeHost(entry);
      if (host.includes('/')) {
        const [net, bits] = ipaddr.parseCIDR(host);
        // `::ffff:10.0.0.0/104` means `10.0.0.0/8`: addresses are compared in their IPv4 form.
        const mapped = net.kind() === 'ipv6' && (net as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96;
        this.ranges.push(mapped ? [(net as ipaddr.IPv6).toIPv4Address(), bits - 96] : [net, bits]);
      } else if (ipaddr.isValid(host)) {
        this.addresses.push(ipaddr.process(host));
      } else if (host.startsWith('*.')) {
        this.suffixes.push(host.slice(1));
      } else {
        this.names.add(host);
      }
    }
  }

  /** True when the host name itself is listed (then any address it resolves to is fine). */
  isHostListed(hostname: string): boolean {
    const host = normalizeHost(hostname);
    return this.names.has(host) || this.suffixes.some((suffix) => host.endsWith(suffix));
  }

  /** Why an address is refused, or undefined when it may be reached. */
  refusal(address: string): string | undefined {
    if (this.verdicts.has(address)) return this.verdicts.get(address);
    const verdict = this.judge(address);
    if (this.verdicts.size >= 1024) this.verdicts.clear();
    this.verdicts.set(address, verdict);
    return verdict;
  }

  private judge(address: string): string | undefined {
    if (!ipaddr.isValid(address)) return 'not an IP address';
    const ip = ipaddr.process(address);
    const range = ip.range();
    if (range === 'unicast') return undefined;
    const listed =
      this.addresses.some((a) => a.kind() === ip.kind() && a.toNormalizedString() === ip.toNormalizedString()) ||
      this.ranges.some(([net, bits]) => net.kind() === ip.kind() && ip.match(net, bits));
    return listed ? undefined : range;
  }

  /** Throws `AddressNotAllowedError` unless `hostname` may connect to `address`. */
  check(hostname: string, address: string): void {
    if (this.isHostListed(hostname)) return;
    const why = this.refusal(address);
    if (why !== undefined) {
      throw new AddressNotAllowedError(
        `refused to connect to ${address} (${why}) for ${hostname}: list it in the tenant's allowHosts to allow it`,
      );
    }
  }
}
