import { parseConfig } from '@crawlfleet/core';
import { describe, expect, it } from 'vitest';
import { AddressNotAllowedError, AddressPolicy } from '../src/index.js';

const REFUSED = [
  { address: '127.0.0.1', range: 'loopback' },
  { address: '10.1.2.3', range: 'private' },
  { address: '172.16.0.1', range: 'private' },
  { address: '192.168.1.1', range: 'private' },
  { address: '169.254.169.254', range: 'linkLocal' },
  { address: '100.64.0.1', range: 'carrierGradeNat' },
  { address: '0.0.0.0', range: 'unspecified' },
  { address: '255.255.255.255', range: 'broadcast' },
  { address: '224.0.0.1', range: 'multicast' },
  { address: '::1', range: 'loopback' },
  { address: '::', range: 'unspecified' },
  { address: 'fe80::1', range: 'linkLocal' },
  { address: 'fc00::1', range: 'uniqueLocal' },
  { address: 'fd00:ec2::254', range: 'uniqueLocal' },
  { address: '::ffff:127.0.0.1', range: 'loopback' },
  { address: '::ffff:10.0.0.1', range: 'private' },
  { address: '::ffff:169.254.169.254', range: 'linkLocal' },
  { address: '64:ff9b::a00:1', range: 'rfc6052' },
  { address: '2002:7f00:1::', range: '6to4' },
] as const;

const PUBLIC = ['8.8.8.8', '1.1.1.1', '93.184.216.34', '2606:4700:4700::1111', '2001:4860:4860::8888'];

function refusalOf(policy: AddressPolicy, hostname: string, address: string): unknown {
  try {
    policy.check(hostname, address);
    return undefined;
  } catch (error) {
    return error;
  }
}

describe('AddressPolicy with no allowHosts', () => {
  const policy = new AddressPolicy([]);

  it.each(REFUSED)('refuses $address as $range', ({ address, range }) => {
    expect(policy.refusal(address)).toBe(range);
  });

  it.each(REFUSED)('throws AddressNotAllowedError on check of $address, naming allowHosts', ({ address, range }) => {
    const error = refusalOf(policy, 'target.example', address);
    expect(error).toBeInstanceOf(AddressNotAllowedError);
    expect(error).toMatchObject({ name: 'AddressNotAllowedError', code: 'ERR_ADDRESS_NOT_ALLOWED' });
    const { message } = error as Error;
    expect(message).toContain('allowHosts');
    expect(message).toContain(address);
    expect(message).toContain(range);
    expect(message).toContain('target.example');
  });

  it.each(PUBLIC)('allows the public address %s', (address) => {
    expect(policy.refusal(address)).toBeUndefined();
    expect(() => policy.check('public.example', address)).not.toThrow();
  });

  it.each(['not-an-ip', '', '999.1.1.1', 'example.com'])('refuses %j, which is not an IP address', (address) => {
    expect(policy.refusal(address)).toBe('not an IP address');
    expect(refusalOf(policy, 'target.example', address)).toBeInstanceOf(AddressNotAllowedError);
  });
});

describe('AddressPolicy allowHosts entries', () => {
  it('allows an exact IPv4 address and nothing next to it', () => {
    const policy = new AddressPolicy(['127.0.0.1']);
    expect(policy.refusal('127.0.0.1')).toBeUndefined();
    expect(policy.refusal('::ffff:127.0.0.1')).toBeUndefined();
    expect(policy.refusal('127.0.0.2')).toBe('loopback');
    expect(policy.refusal('10.0.0.1')).toBe('private');
    expect(() => policy.check('127.0.0.1', '127.0.0.1')).not.toThrow();
    expect(() => policy.check('anything.example', '127.0.0.1')).not.toThrow();
  });

  it('allows every address in an IPv4 CIDR range and none outside it', () => {
    const policy = new AddressPolicy(['10.0.0.0/8']);
    expect(policy.refusal('10.9.9.9')).toBeUndefined();
    expect(policy.refusal('10.0.0.0')).toBeUndefined();
    expect(policy.refusal('10.255.255.255')).toBeUndefined();
    expect(policy.refusal('::ffff:10.9.9.9')).toBeUndefined();
    expect(policy.refusal('11.0.0.1')).toBeUndefined(); // public anyway
    expect(policy.refusal('172.16.0.1')).toBe('private');
    expect(policy.refusal('127.0.0.1')).toBe('loopback');
  });

  it('allows a CIDR range of a private network but not the neighbouring private network', () => {
    const policy = new AddressPolicy(['192.168.10.0/24']);
    expect(policy.refusal('192.168.10.77')).toBeUndefined();
    expect(policy.refusal('192.168.11.1')).toBe('private');
  });

  it('allows an exact IPv6 address, bracketed or not', () => {
    for (const entry of ['::1', '[::1]', '0:0:0:0:0:0:0:1']) {
      const policy = new AddressPolicy([entry]);
      expect(policy.refusal('::1')).toBeUndefined();
      expect(policy.refusal('0000:0000::0001')).toBeUndefined();
      expect(policy.refusal('127.0.0.1')).toBe('loopback');
      expect(policy.refusal('fe80::1')).toBe('linkLocal');
    }
  });

  it('allows an IPv6 CIDR range', () => {
    const policy = new AddressPolicy(['fd00:ec2::/32']);
    expect(policy.refusal('fd00:ec2::254')).toBeUndefined();
    expect(policy.refusal('fd00:ec3::1')).toBe('uniqueLocal');
  });

  it('allows an IPv4-mapped IPv6 CIDR range like the IPv4 range it maps, as it does an exact mapped address', () => {
    const policy = new AddressPolicy(['::ffff:127.0.0.0/104']);
    expect(policy.refusal('127.0.0.1')).toBeUndefined();
    expect(policy.refusal('::ffff:127.0.0.1')).toBeUndefined();
  });

  it('allows any address for a listed host name, ignoring case and a trailing dot', () => {
    const policy = new AddressPolicy(['intranet.local']);
    for (const hostname of ['intranet.local', 'INTRANET.Local', 'intranet.local.']) {
      expect(policy.isHostListed(hostname)).toBe(true);
      for (const address of ['10.0.0.5', '127.0.0.1', '169.254.169.254', '::1']) {
        expect(() => policy.check(hostname, address)).not.toThrow();
      }
    }
    expect(policy.isHostListed('other.local')).toBe(false);
    expect(policy.isHostListed('a.intranet.local')).toBe(false);
    expect(refusalOf(policy, 'other.local', '10.0.0.5')).toBeInstanceOf(AddressNotAllowedError);
  });

  it('reads a listed host name with capitals and a trailing dot as the same name', () => {
    const policy = new AddressPolicy(['Intranet.Local.']);
    expect(policy.isHostListed('intranet.local')).toBe(true);
    expect(() => policy.check('intranet.local', '10.0.0.5')).not.toThrow();
  });

  it('does not let a listed host name allow the address for other names', () => {
    const policy = new AddressPolicy(['intranet.local']);
    expect(policy.refusal('10.0.0.5')).toBe('private');
  });

  it('allows sub-domains of a wildcard at any depth but not the bare domain', () => {
    const policy = new AddressPolicy(['*.corp.example']);
    for (const hostname of ['a.corp.example', 'b.a.corp.example', 'A.CORP.EXAMPLE.']) {
      expect(policy.isHostListed(hostname)).toBe(true);
      expect(() => policy.check(hostname, '10.0.0.5')).not.toThrow();
    }
    for (const hostname of ['corp.example', 'evilcorp.example', 'a.corp.example.evil', 'corp.example.a']) {
      expect(policy.isHostListed(hostname)).toBe(false);
      expect(refusalOf(policy, hostname, '10.0.0.5')).toBeInstanceOf(AddressNotAllowedError);
    }
  });

  it('still allows public addresses for names that are not listed', () => {
    const policy = new AddressPolicy(['intranet.local', '*.corp.example', '10.0.0.0/8']);
    expect(() => policy.check('public.example', '8.8.8.8')).not.toThrow();
  });

  it('combines entries: each one allows what it lists', () => {
    const policy = new AddressPolicy(['127.0.0.1', '192.168.0.0/16', '::1', 'intranet.local']);
    expect(policy.refusal('127.0.0.1')).toBeUndefined();
    expect(policy.refusal('192.168.3.4')).toBeUndefined();
    expect(policy.refusal('::1')).toBeUndefined();
    expect(policy.refusal('10.0.0.1')).toBe('private');
    expect(() => policy.check('intranet.local', '10.0.0.1')).not.toThrow();
  });
});

describe('AddressPolicy and the config schema', () => {
  // A tenant config that parses must give a policy: otherwise every fetch of that tenant throws an
  // untyped ipaddr error at fetch time, which classifies as a recoverable network_error and is retried.
  it.each(['10.0.0.0/99', '::1/200', 'intranet.local/8'])(
    'reads every allowHosts entry that parseConfig accepts, or parseConfig refuses it (%s)',
    (entry) => {
      let allowHosts: string[];
      try {
        allowHosts = parseConfig({ tenants: { t: { allowHosts: [entry] } } }).tenants.t?.allowHosts ?? [];
      } catch {
        return; // refused at the edge: fine
      }
      expect(() => new AddressPolicy(allowHosts)).not.toThrow();
    },
  );
});
