/**
 * Fixed-window rate limits, as pure decisions: which counter a request falls into, and whether the
 * count that counter reached is still allowed. The counting itself is `storage.increment` (atomic,
 * TTL from the counter's creation), so every replica sharing the store shares the count.
 *
 * Windows are aligned to the clock (`floor(now / window)`), not to the first request: the counter key
 * names its window, so the time left in it, and therefore `Retry-After` (RFC 9110 §10.2.3), can be
 * computed without a read, and two replicas agree on when a window ends.
 *
 * Addresses are counted by the group one party holds (address-group.ts: an IPv6 client by its /64).
 */
import { addressGroup } from './address-group.ts';

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
