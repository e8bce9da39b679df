/**
 * Fixed-window rate limits, as pure decisions: which counter a request falls into, and whether the
 * count that counter reached is still allowed. The counting itself is `storage.increment` (atomic,
 * TTL from the counter's creation), so every replica sharing the store shares the count.
 *
 * Windows are aligned to the clock (`floor(now / window)`), not to the first request: the counter key
 * names its window, so the time left in it, and therefore `Retry-After` (RFC 9110 §10.2.3), can be
 * computed without a read, and two replicas agree on when a window ends.
 *
 * Addresses are grouped the way one party holds them: an IPv4-mapped IPv6 address counts as its IPv4
 * address, and an IPv6 address counts as its /64 (one end site's subnet, RFC 6177 §2), since a host
 * that owns a /64 can send from a new address for every request.
 */
import { isIPv4, isIPv6 } from 'node:net';

/** A limit of `limit` events per `windowSeconds`; `limit: 0` turns the limit off. */
export interface RateLimitRule {
  limit: number;
  windowSeconds: number;
}

/** The counter one event is added to, and when its window closes. */
export interface RateLimitWindow {
  /** Storage key: `<scope>:<address group>:<window number>`. */
  key: string;
  /** Seconds from `now` until the window closes (at least 1): the counter's TTL and the Retry-After. */
  secondsLeft: number;
}

export interface RateLimitDecision {
  allowed: boolean;
  /** Events still allowed in this window after this one. */
  remaining: number;
  /** When refused: whole seconds until a new window starts (the `Retry-After` value). */
  retryAfterSeconds: number;
}

/**
 * The address group a client address is counted under: IPv4 as is, IPv4-mapped IPv6 as its IPv4
 * form, other IPv6 as its /64 prefix, and anything unparseable (or absent) as one shared `unknown`.
 */
export function addressGroup(address: string | undefined): string {
  if (!address) return 'unknown';
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  const zoneless = bare.split('%')[0] ?? bare;
  if (isIPv4(zoneless)) return zoneless;
  if (!isIPv6(zoneless)) return 'unknown';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(zoneless);
  if (mapped?.[1] && isIPv4(mapped[1])) return mapped[1];
  return `${ipv6Prefix64(zoneless)}::/64`;
}

/** The first four 16-bit groups of an IPv6 address, expanded and lowercase. */
function ipv6Prefix64(address: string): string {
  let text = address.toLowerCase();
  // An embedded IPv4 tail (::ffff:… is handled above; ::1.2.3.4 and friends) becomes two groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4?.[1]) {
    const [a = 0, b = 0, c = 0, d = 0] = v4[1].split('.').map(Number);
    text = `${text.slice(0, -v4[1].length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const missing = 8 - headGroups.length - tailGroups.length;
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array<string>(missing).fill('0'), ...tailGroups];
  return groups.slice(0, 4).map((group) => Number.parseInt(group || '0', 16).toString(16)).join(':');
}

/** The counter for an event of `scope` from `address` at `nowMs`. */
export function rateLimitWindow(scope: string, address: string | undefined, rule: RateLimitRule, nowMs: number): RateLimitWindow {
  const windowMs = rule.windowSeconds * 1000;
  const index = Math.floor(nowMs / windowMs);
  const secondsLeft = Math.max(1, Math.ceil(((index + 1) * windowMs - nowMs) / 1000));
  return { key: `${scope}:${addressGroup(address)}:${index}`, secondsLeft };
}

/** Whether the event that brought its window's counter to `count` is allowed. */
export function rateLimitDecision(count: number, rule: RateLimitRule, window: RateLimitWindow): RateLimitDecision {
  if (rule.limit <= 0) return { allowed: true, remaining: Number.POSITIVE_INFINITY, retryAfterSeconds: 0 };
  const allowed = count <= rule.limit;
  return { allowed, remaining: Math.max(0, rule.limit - count), retryAfterSeconds: allowed ? 0 : window.secondsLeft };
}
