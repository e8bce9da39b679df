/**
 * Rules every storage backend applies the same way, kept in one place so the backends cannot drift:
 * how values are serialised and how a TTL becomes an absolute expiry.
 */

/**
 * Serialises a value for storage. Every backend stores JSON text, even the in-memory one, so a caller
 * gets the same copy semantics everywhere: mutating an object after `set` (or after `get`) never
 * changes what is stored, exactly as with SQLite or Redis.
 */
export function encodeValue(value: unknown): string {
  const text = JSON.stringify(value);
  // JSON.stringify returns undefined (not a string) for undefined, functions and symbols.
  if (typeof text !== 'string') throw new TypeError('storage values must be JSON-serialisable');
  return text;
}

export function decodeValue<T>(text: string): T {
  return JSON.parse(text) as T;
}

/**
 * Absolute expiry in epoch milliseconds, or null for "never". Fractions of a second are kept (ms
 * precision, as Redis PX). A TTL of zero or less yields an expiry in the past: the entry is stored
 * already expired, which readers treat as absent, so callers that compute a remaining lifetime need
 * no special case for "already over".
 */
export function expiryFrom(now: number, ttlSeconds: number | undefined): number | null {
  if (ttlSeconds === undefined) return null;
  if (!Number.isFinite(ttlSeconds)) throw new RangeError('ttlSeconds must be a finite number of seconds');
  return now + Math.round(ttlSeconds * 1000);
}

/** An entry is live while its expiry is strictly in the future. */
export function isLive(expiresAt: number | null, now: number): boolean {
  return expiresAt === null || expiresAt > now;
}

/**
 * Expiry of a set after adding a member. A set is a secondary index over entries with their own TTLs,
 * so it must outlive the longest-lived entry it points to: adding never shortens the expiry, and a
 * member added without a TTL makes the set permanent.
 */
export function extendedSetExpiry(current: number | null | undefined, added: number | null): number | null {
  if (current === undefined) return added; // no live set yet
  if (current === null || added === null) return null;
  return Math.max(current, added);
}
