/**
 * Outbound requests to URLs chosen by strangers (Client ID Metadata Documents) must not reach the
 * gateway's own network: refuse loopback, private, link-local and other special-use addresses
 * (draft-ietf-oauth-client-id-metadata-document §6 "SSRF"; RFC 9700 §4.x on server-side fetches).
 *
 * The check runs at DNS resolution time inside the connection (not before it), so a name that resolves
 * differently on a second lookup (DNS rebinding) cannot slip through.
 */

import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { ErrorCode, GatewayError } from '../core/errors.ts';

// Two lists: node's BlockList matches IPv4 addresses against IPv4-mapped IPv6 rules too, so the
// `::ffff:0:0/96` rule in one shared list would refuse every IPv4 address.
const specialUseV4 = new BlockList();
const specialUseV6 = new BlockList();
// IPv4 special-use registry (RFC 6890 and successors).
for (const [network, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.31.196.0', 24],
  ['192.52.193.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['192.175.48.0', 24],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const)
  specialUseV4.addSubnet(network, prefix, 'ipv4');
// IPv6 special-use registry.
for (const [network, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['64:ff9b::', 96],
  ['64:ff9b:1::', 48],
  ['100::', 64],
  ['2001::', 23],
  ['2001:db8::', 32],
  ['2002::', 16],
  ['3fff::', 20],
  ['5f00::', 16],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const)
  specialUseV6.addSubnet(network, prefix, 'ipv6');

const ipv4Mapped = new BlockList();
ipv4Mapped.addSubnet('::ffff:0:0', 96, 'ipv6');

/** `::ffff:a.b.c.d` or `::ffff:7f00:1` -> `a.b.c.d`: a mapped address is judged as the IPv4 it carries. */
function ipv4MappedAddress(address: string): string | undefined {
  if (!ipv4Mapped.check(address, 'ipv6')) return undefined;
  const hostname = new URL(`http://[${address}]`).hostname; // normalises to ::ffff:hhhh:hhhh
  const groups = /:([0-9a-f]{1,4}):([0-9a-f]{1,4})\]$/i.exec(hostname);
  if (!groups?.[1] || !groups[2]) return undefined;
  const high = parseInt(groups[1], 16);
  const low = parseInt(groups[2], 16);
  return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
}

export function isSpecialUseAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true; // not an address at all: refuse rather than guess
  if (family === 6) {
    const mapped = ipv4MappedAddress(address);
    if (mapped) return specialUseV4.check(mapped, 'ipv4');
    return specialUseV6.check(address, 'ipv6');
  }
  return specialUseV4.check(address, 'ipv4');
}

/** A fetch refused because its target is (or resolves to) a special-use address. */
export class SsrfError extends GatewayError {
  constructor(message: string) {
    super(ErrorCode.CIMD_FETCH_REFUSED, message);
    this.name = 'SsrfError';
  }
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** A `lookup` for `net.connect` that refuses special-use results, unless private addresses are allowed. */
export function guardedLookup(allowPrivate: boolean) {
  return (hostname: string, options: object, callback: LookupCallback): void => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, []);
      const list = addresses as LookupAddress[];
      const refused = !allowPrivate && list.some((entry) => isSpecialUseAddress(entry.address));
      if (refused) return callback(new SsrfError(`${hostname} resolves to a special-use address`), []);
      if ((options as { all?: boolean }).all) return callback(null, list);
      const first = list[0];
      if (!first) return callback(new SsrfError(`${hostname} did not resolve`), []);
      callback(null, first.address, first.family);
    });
  };
}

/** Literal IP hosts skip DNS, so they are checked up front. */
export function assertHostAllowed(url: URL, allowPrivate: boolean): void {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!allowPrivate && isIP(host) !== 0 && isSpecialUseAddress(host)) {
    throw new SsrfError(`${host} is a special-use address`);
  }
}
