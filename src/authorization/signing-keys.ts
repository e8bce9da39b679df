/**
 * The lifecycle of the ES256 keys that sign access tokens and ID tokens, as pure functions of the
 * stored key list and "now" (docs/keys.md). Nothing here does I/O: storage and locking are in
 * keys.ts, the running gateway's copy in signing-key-ring.ts.
 *
 *   created ──(prePublication)──▶ active (signs) ──(next key activates)──▶ retired (verify only)
 *      │ published in the JWKS          │ published                            │ published until every
 *      ▼                                ▼                                      ▼ token it signed expired
 *
 * Each key carries the time it was created and the time it starts signing; when it stops signing
 * and when it leaves the JWKS follow from the next key's start. Every replica therefore computes the
 * same state from the same list, at its own clock, without talking to the others.
 */
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, type JWK } from 'jose';

/** One signing key as stored (sealed) in the key record. Times are epoch milliseconds. */
export interface SigningKeyEntry {
  /** The private JWK, with `kid`, `alg: ES256` and `use: sig`. */
  jwk: JWK;
  /** When it was generated, and so first published. */
  createdAt: number;
  /** When it starts signing; the previous key stops then. */
  activatesAt: number;
}

export interface SigningKeyPolicy {
  /** How long a key signs before its successor takes over; 0: no scheduled rotation. */
  rotationPeriodMs: number;
  /** How long a new key is published before it signs (longer than any JWKS cache may hold the old set). */
  prePublicationMs: number;
  /** How long a key stays published after it stopped signing (the longest token lifetime plus margin). */
  retentionMs: number;
}

/** What one instant looks like: who signs, what is published, and when that next changes. */
export interface SigningKeyState {
  active: SigningKeyEntry;
  /** Active first, then keys waiting to sign, then retired keys still verifying, newest first. */
  published: SigningKeyEntry[];
  /** A key waiting to sign (published ahead), if any. */
  pending: SigningKeyEntry | undefined;
  /** Epoch ms of the next activation or removal; Infinity when nothing is scheduled. */
  nextChangeAt: number;
}

/** JWKS caching the gateway announces on /jwks (Cache-Control max-age), in seconds. */
export const JWKS_MAX_AGE_SECONDS = 600;

/**
 * A new key is published an hour before it signs: six JWKS cache periods, so a resource server or
 * client that cached /jwks just before the new key appeared has refetched it several times over,
 * and every replica has reloaded the key record (each does so every minute, signing-key-ring.ts).
 */
export const PRE_PUBLICATION_MS = 3_600_000;

/**
 * Kept on top of the longest token lifetime before a retired key leaves the JWKS: replicas' clocks
 * may differ, a replica may sign with the old key until its next reload, and verifiers tolerate a
 * few seconds of skew on `exp`.
 */
export const RETENTION_MARGIN_MS = 300_000;

/** The retention for tokens that live at most `longestTokenSeconds`. */
export function retentionFor(longestTokenSeconds: number): number {
  return longestTokenSeconds * 1000 + RETENTION_MARGIN_MS;
}

export async function generateSigningJwk(): Promise<JWK> {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, kid: randomUUID(), alg: 'ES256', use: 'sig' };
}

/** The public half of a key, for the JWKS and the token check. */
export function publicJwk({ d: _private, ...publicPart }: JWK): JWK {
  return publicPart;
}

/**
 * Reads the stored list, including the layout before rotation existed (a bare list of JWKs, newest
 * first, the first signing): those keys count as active since the epoch, so the first scheduled
 * rotation after an upgrade replaces a key that was never rotated.
 */
export function signingEntriesFrom(stored: readonly unknown[]): SigningKeyEntry[] {
  return stored.map((item, index) => {
    if (typeof item === 'object' && item !== null && 'jwk' in item) return item as SigningKeyEntry;
    return { jwk: item as JWK, createdAt: 0, activatesAt: index === 0 ? 0 : -index };
  });
}

function byActivation(entries: readonly SigningKeyEntry[]): SigningKeyEntry[] {
  return [...entries].sort((a, b) => a.activatesAt - b.activatesAt);
}

/** The state at `now`. Throws on an empty list (the record always holds at least one key). */
export function signingKeyState(entries: readonly SigningKeyEntry[], now: number, retentionMs: number): SigningKeyState {
  const ordered = byActivation(entries);
  if (ordered.length === 0) throw new RangeError('the signing key list is empty');
  // The last key whose time has come signs; if the clock stands before every activation (it was set
  // back), the earliest key keeps signing rather than none.
  let activeIndex = 0;
  for (let index = 0; index < ordered.length; index++) if (ordered[index]!.activatesAt <= now) activeIndex = index;
  const active = ordered[activeIndex]!;
  const waiting = ordered.slice(activeIndex + 1);
  const retired: SigningKeyEntry[] = [];
  let nextChangeAt = waiting[0]?.activatesAt ?? Number.POSITIVE_INFINITY;
  for (let index = activeIndex - 1; index >= 0; index--) {
    const removedAt = ordered[index + 1]!.activatesAt + retentionMs;
    if (now < removedAt) {
      retired.push(ordered[index]!);
      nextChangeAt = Math.min(nextChangeAt, removedAt);
    }
  }
  return { active, published: [active, ...waiting, ...retired], pending: waiting[0], nextChangeAt };
}

/**
 * Whether the scheduled rotation should publish the next key now: rotation is on, no key is already
 * waiting, and the active key will have signed for a full period once the new one has been published
 * for the pre-publication time.
 */
export function rotationDue(entries: readonly SigningKeyEntry[], now: number, policy: SigningKeyPolicy): boolean {
  if (policy.rotationPeriodMs <= 0) return false;
  const state = signingKeyState(entries, now, policy.retentionMs);
  if (state.pending) return false;
  return now >= state.active.activatesAt + policy.rotationPeriodMs - policy.prePublicationMs;
}

/**
 * The list with `next` added to sign after the pre-publication time, and with keys that have left
 * the JWKS dropped, so the record does not grow with every rotation.
 */
export function withNextKey(
  entries: readonly SigningKeyEntry[],
  next: JWK,
  now: number,
  policy: Omit<SigningKeyPolicy, 'rotationPeriodMs'>,
): SigningKeyEntry[] {
  const kept = signingKeyState(entries, now, policy.retentionMs).published;
  return [...kept, { jwk: next, createdAt: now, activatesAt: now + policy.prePublicationMs }];
}
