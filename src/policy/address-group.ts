/**
 * The group a client address is counted under by per-address limits (registration rate limits, the
 * local sign-in lockout): one group per party that holds the addresses, so that moving between
 * addresses that party owns does not escape the limit.
 *
 * - IPv4: the address itself.
 * - IPv4-mapped IPv6 (`::ffff:203.0.113.5`, in any spelling, RFC 4291 §2.5.5.2): the IPv4 address, which
 *   is what it is; a dual-stack socket reports IPv4 clients this way.
 * - Other IPv6: the /64 prefix. One end site is given at least a /64 (RFC 6177 §2), and a host there
 *   can send every request from a new address (RFC 8981 temporary addresses).
 * - A zone id (`fe80::1%eth0`, RFC 4007 §11) or brackets (`[2001:db8::1]`) do not change the group.
 * - Anything else (absent, not an address): one shared `unknown` group, so that unparseable values
 *   cannot each open a fresh allowance.
 */
import { isIPv4, isIPv6 } from 'node:net';

export const UNKNOWN_ADDRESS_GROUP = 'unknown';

export function addressGroup(address: string | undefined): string {
  if (!address) return UNKNOWN_ADDRESS_GROUP;
  let text = address.trim();
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1);
  const zone = text.indexOf('%');
  if (zone !== -1) text = text.slice(0, zone);
  if (isIPv4(text)) return text;
  if (!isIPv6(text)) return UNKNOWN_ADDRESS_GROUP;
  const groups = ipv6Groups(text.toLowerCase());
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 && groups[5] === 0xffff) {
    const high = groups[6] ?? 0;
    const low = groups[7] ?? 0;
    return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
  }
  return `${groups
    .slice(0, 4)
    .map((group) => group.toString(16))
    .join(':')}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (`::` expanded, a dotted IPv4 tail as two groups). */
function ipv6Groups(address: string): number[] {
  let text = address;
  const lastColon = text.lastIndexOf(':');
  const last = text.slice(lastColon + 1);
  if (last.includes('.')) {
    const [a = 0, b = 0, c = 0, d = 0] = last.split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const zeros = tail === undefined ? 0 : 8 - headGroups.length - tailGroups.length;
  return [...headGroups, ...Array<string>(zeros).fill('0'), ...tailGroups].map((group) => Number.parseInt(group, 16));
}
