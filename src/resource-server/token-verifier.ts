/**
 * Verification of the access tokens the gateway's own authorization server issues.
 *
 * Tokens are JWTs per RFC 9068 ("JWT Profile for OAuth 2.0 Access Tokens"), signed ES256 with keys the
 * process already holds, so no HTTP fetch of a JWKS is involved (a token naming an unknown `kid` asks
 * for the stored key set to be read again: docs/keys.md). This is the hot path of every MCP
 * request: a token is verified once, then answered from a bounded cache until it expires. Normal
 * failures come back as values, not exceptions.
 */

import type { JWK, JWTPayload } from 'jose';
import { createLocalJWKSet, decodeProtectedHeader, errors, jwtVerify } from 'jose';
import { type Clock, systemClock } from '../core/clock.ts';
import type { UserRecord } from '../storage/records.ts';
import { GRANT_ID_CLAIM } from '../storage/revocation-list.ts';
import type { EncodedIdentity } from './identity-headers.ts';

/** RFC 9068 §2.2 claims the gateway relies on. */
export interface AccessTokenClaims extends JWTPayload {
  sub: string;
  client_id: string;
  exp: number;
  /** RFC 9068 §2.2.3: space-separated scopes. */
  scope?: string;
}

/**
 * A token whose signature, issuer, type and lifetime have been checked. The audience is checked per
 * request (the same token may be presented to several routes). `user` is attached by the gateway after
 * its first lookup, so a user is read from storage once per token, not once per request.
 */
export interface VerifiedToken {
  readonly claims: AccessTokenClaims;
  /** Epoch milliseconds after which the cache entry is no longer used. */
  readonly expiresAt: number;
  readonly scopes: ReadonlySet<string>;
  readonly kid: string | undefined;
  /** The grant the token was issued under (`grant_id`), matched against the revoked grants on every use. */
  readonly grantId: string | undefined;
  user?: UserRecord;
  /** Identity header values encoded from `user`, computed once with it. */
  identity?: EncodedIdentity;
}

export type TokenFailureReason = 'missing' | 'invalid' | 'expired' | 'wrong_audience' | 'revoked';

export type VerifyResult = { ok: true; token: VerifiedToken } | { ok: false; reason: TokenFailureReason; description: string };

export interface TokenVerifierOptions {
  /** Expected `iss`, exactly (RFC 9068 §4 step 3). */
  issuer: string;
  /** The authorization server's current public signing keys. Called only when a signature must be checked. */
  publicKeys: () => JWK[];
  /**
   * Called when a token names a `kid` that `publicKeys` lacks: another replica may have published a
   * new key since this one last read the key set (docs/keys.md). Resolves true when the kid is known
   * afterwards. The callee rate-limits its storage reads, so made-up kids cannot hammer storage.
   */
  refreshKeys?: (kid: string) => Promise<boolean>;
  /** Seconds of clock skew tolerated on `exp` and `nbf`. */
  clockToleranceSeconds?: number;
  /** Maximum number of verified tokens kept. */
  cacheSize?: number;
  /** Decides `exp`/`nbf` and when a cached token stops being answered; tests pass one they can move. */
  clock?: Clock;
  /**
   * Whether a grant was revoked (src/storage/revocation-list.ts): asked on every use of a token, cached
   * or not, so the cache never keeps a revoked token alive. Must be a cheap synchronous lookup.
   */
  isRevoked?: (grantId: string) => boolean;
}

export interface TokenVerifier {
  /**
   * Answers from the cache only: no signature check, no promise. `undefined` means "not seen before
   * (or expired from the cache)", and the caller falls back to `verify`.
   */
  peek(token: string, resource: string): VerifyResult | undefined;
  /** Full check, answered from the cache when possible. Never rejects. */
  verify(token: string, resource: string): Promise<VerifyResult>;
  /** Forgets every cached token (for example after a signing key was withdrawn). */
  clear(): void;
  readonly cacheSize: number;
  /** Checks answered from the cache, and checks that verified a signature (for the metrics scrape). */
  readonly cacheHits: number;
  readonly cacheMisses: number;
}

/** RFC 9068 §2.1: the `typ` header is `at+jwt` (jose also accepts `application/at+jwt`). */
const ACCESS_TOKEN_TYPE = 'at+jwt';

export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  return new Verifier(options);
}

type LocalKeySet = ReturnType<typeof createLocalJWKSet>;

/** A JWS whose signature and registered claims jose accepted, before the gateway's own claim checks. */
type SignatureResult = { ok: true; payload: JWTPayload; kid: string | undefined } | { ok: false; failure: VerifyResult };

/**
 * State (cache, key set and the fingerprint it was built from) lives in explicit fields, so each step
 * is a small named method; callers always call `peek`/`verify` as methods.
 */
class Verifier implements TokenVerifier {
  readonly #options: TokenVerifierOptions;
  readonly #clock: Clock;
  readonly #tolerance: number;
  readonly #cache: TokenCache;
  readonly #isRevoked: (grantId: string) => boolean;
  #keySet: LocalKeySet | undefined;
  #keyFingerprint = '';
  cacheHits = 0;
  cacheMisses = 0;

  constructor(options: TokenVerifierOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#tolerance = options.clockToleranceSeconds ?? 5;
    this.#cache = new TokenCache(options.cacheSize ?? 10_000);
    this.#isRevoked = options.isRevoked ?? notRevoked;
  }

  get cacheSize(): number {
    return this.#cache.size;
  }

  /** The hot path: one map lookup, one revocation lookup and an audience comparison, no promise. */
  peek(token: string, resource: string): VerifyResult | undefined {
    const entry = this.#cache.get(token, this.#clock.now());
    if (entry === undefined) return undefined;
    if (entry.grantId !== undefined && this.#isRevoked(entry.grantId)) {
      this.#cache.delete(token);
      return REVOKED;
    }
    this.cacheHits++;
    return audienceResult(entry, resource);
  }

  async verify(token: string, resource: string): Promise<VerifyResult> {
    const cached = this.peek(token, resource);
    if (cached) return cached;
    this.cacheMisses++;
    if (!looksLikeJws(token)) return { ok: false, reason: 'invalid', description: 'The access token is malformed.' };
    const signed = await this.#checkSignature(token);
    if (!signed.ok) return signed.failure;
    const entry = verifiedTokenFrom(signed.payload, signed.kid);
    if (entry === undefined) return { ok: false, reason: 'invalid', description: 'The access token lacks required claims.' };
    if (entry.grantId !== undefined && this.#isRevoked(entry.grantId)) return REVOKED;
    // A token inside the clock tolerance past `exp` is accepted once but not cached.
    if (entry.expiresAt > this.#clock.now()) this.#cache.set(token, entry);
    return audienceResult(entry, resource);
  }

  clear(): void {
    this.#cache.clear();
  }

  /** Signature, issuer, `typ`, algorithm and lifetime (RFC 9068 §4); failures come back as values. */
  async #checkSignature(token: string): Promise<SignatureResult> {
    try {
      await this.#learnKid(token);
      const result = await jwtVerify(token, this.#currentKeySet(), {
        issuer: this.#options.issuer,
        algorithms: ['ES256'],
        typ: ACCESS_TOKEN_TYPE,
        clockTolerance: this.#tolerance,
        requiredClaims: ['exp', 'sub', 'client_id'],
        currentDate: new Date(this.#clock.now()),
      });
      return { ok: true, payload: result.payload, kid: result.protectedHeader.kid };
    } catch (error) {
      return { ok: false, failure: failureFrom(error) };
    }
  }

  /** A token signed by a key this instance has not seen yet: ask for the key set to be read again first. */
  async #learnKid(token: string): Promise<void> {
    const refresh = this.#options.refreshKeys;
    if (refresh === undefined) return;
    const { kid } = decodeProtectedHeader(token);
    if (typeof kid !== 'string' || this.#options.publicKeys().some((key) => key.kid === kid)) return;
    await refresh(kid);
  }

  /** Rebuilds the local JWKS only when the key set differs from the one it was built from. */
  #currentKeySet(): LocalKeySet {
    const keys = this.#options.publicKeys();
    const fingerprint = fingerprintOf(keys);
    if (!this.#keySet || fingerprint !== this.#keyFingerprint) {
      this.#keySet = createLocalJWKSet({ keys });
      if (this.#keyFingerprint !== '') this.#cache.retainKids(new Set(keys.map((key) => key.kid)));
      this.#keyFingerprint = fingerprint;
    }
    return this.#keySet;
  }
}

const notRevoked = (): boolean => false;

/** RFC 6750 §3.1 invalid_token: the grant behind the token was revoked (docs/tokens.md, "Revocation"). */
const REVOKED: VerifyResult = { ok: false, reason: 'revoked', description: 'The access token has been revoked.' };

/** The cache entry for a signed payload, or `undefined` when a claim the gateway relies on has the wrong type. */
function verifiedTokenFrom(payload: JWTPayload, kid: string | undefined): VerifiedToken | undefined {
  const grantId = payload[GRANT_ID_CLAIM];
  if (
    typeof payload.sub !== 'string' ||
    typeof payload.client_id !== 'string' ||
    (payload.scope !== undefined && typeof payload.scope !== 'string') ||
    (grantId !== undefined && typeof grantId !== 'string')
  ) {
    return undefined;
  }
  const claims = payload as AccessTokenClaims;
  return {
    claims,
    expiresAt: claims.exp * 1000,
    scopes: new Set(claims.scope ? claims.scope.split(' ').filter(Boolean) : []),
    kid,
    // Tokens issued before access tokens named their grant have none; they expire within one lifetime.
    grantId: typeof grantId === 'string' ? grantId : undefined,
  };
}

/**
 * RFC 8707 / RFC 9068 §4 step 4: the token must name this resource in `aud`. The comparison is exact:
 * the authorization server canonicalises `resource` before binding it (see resource.ts).
 */
function audienceResult(entry: VerifiedToken, resource: string): VerifyResult {
  const aud = entry.claims.aud;
  const match = typeof aud === 'string' ? aud === resource : Array.isArray(aud) && aud.includes(resource);
  if (match) return { ok: true, token: entry };
  return { ok: false, reason: 'wrong_audience', description: 'The access token was not issued for this MCP server.' };
}

function failureFrom(error: unknown): VerifyResult {
  if (error instanceof errors.JWTExpired) return { ok: false, reason: 'expired', description: 'The access token has expired.' };
  return { ok: false, reason: 'invalid', description: 'The access token is invalid.' };
}

/** Cheap shape check (three base64url segments) so garbage never reaches the JOSE parser. */
function looksLikeJws(token: string): boolean {
  return token.length < 16_384 && /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token);
}

function fingerprintOf(keys: readonly JWK[]): string {
  let out = '';
  for (const key of keys) out += `${key.kid ?? ''}:${key.x ?? ''}:${key.y ?? ''}:${key.n ?? ''};`;
  return out || 'empty';
}

/**
 * A bounded map of verified tokens with second-chance ("clock") eviction, an approximation of
 * least-recently-used.
 *
 * Two costs of the obvious `Map<token, entry>` are avoided, each worth microseconds per request with a
 * ~300-character JWT in a string node:http creates afresh for every request (bench/guard-check.ts,
 * docs/performance.md): hashing the whole token for the lookup, and moving the entry to the young end
 * on every hit (delete, then set again). The key is the token's last KEY_CHARS characters, the end of
 * its ES256 signature, and a hit also compares the whole token with the one that was verified (a
 * plain string comparison), so a token that merely ends alike is a miss. A hit only sets a flag: when
 * the map is full, the oldest entry goes unless it was used since it last came round, in which case
 * it gets a second chance at the young end, so a token in use is never the one evicted.
 */
class TokenCache {
  readonly #max: number;
  readonly #entries = new Map<string, CacheSlot>();

  constructor(max: number) {
    this.#max = Math.max(1, max);
  }

  get size(): number {
    return this.#entries.size;
  }

  get(token: string, nowMs: number): VerifiedToken | undefined {
    const slot = this.#entries.get(cacheKey(token));
    if (slot === undefined || slot.token !== token) return undefined;
    if (slot.entry.expiresAt <= nowMs) {
      this.#entries.delete(cacheKey(token));
      return undefined;
    }
    slot.used = true;
    return slot.entry;
  }

  delete(token: string): void {
    const key = cacheKey(token);
    if (this.#entries.get(key)?.token === token) this.#entries.delete(key);
  }

  set(token: string, entry: VerifiedToken): void {
    const key = cacheKey(token);
    this.#entries.delete(key);
    this.#entries.set(key, new CacheSlot(token, entry));
    if (this.#entries.size > this.#max) this.#evictOne();
  }

  /** Drops the oldest entry not used since it last came round; used ones move to the young end. */
  #evictOne(): void {
    for (const [key, slot] of this.#entries) {
      this.#entries.delete(key);
      if (!slot.used) return;
      slot.used = false;
      this.#entries.set(key, slot);
    }
  }

  /** Drops tokens signed by keys that have left the key set, so a withdrawn key stops working at once. */
  retainKids(kids: ReadonlySet<string | undefined>): void {
    for (const [key, slot] of this.#entries) if (!kids.has(slot.entry.kid)) this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }
}

/** 32 base64url characters: 192 bits of the signature, so two verified tokens never share a key in practice. */
const KEY_CHARS = 32;

function cacheKey(token: string): string {
  return token.length <= KEY_CHARS ? token : token.slice(token.length - KEY_CHARS);
}

class CacheSlot {
  readonly token: string;
  readonly entry: VerifiedToken;
  /** Set by a hit, cleared when eviction passes over the slot. */
  used = false;
  constructor(token: string, entry: VerifiedToken) {
    this.token = token;
    this.entry = entry;
  }
}

export type BearerExtraction = { ok: true; token: string } | { ok: false; reason: 'missing' | 'malformed' | 'in_query' };

/** Why a request carries no usable bearer token (constants, so the hot path allocates none). */
export type BearerFailure = { readonly ok: false; readonly reason: 'missing' | 'malformed' | 'in_query' };
const MISSING: BearerFailure = Object.freeze({ ok: false, reason: 'missing' });
const MALFORMED: BearerFailure = Object.freeze({ ok: false, reason: 'malformed' });
const IN_QUERY: BearerFailure = Object.freeze({ ok: false, reason: 'in_query' });

/**
 * Takes the token from `Authorization: Bearer <token>` (RFC 6750 §2.1) and nowhere else.
 *
 * A token in the query string (`access_token=`, RFC 6750 §2.3) is refused even when a header is present
 * too: it lands in logs and browser history, and both MCP (Authorization, "Token requirements") and
 * RFC 9700 §2.4.2 forbid it. Another auth scheme (Basic, …) counts as "no bearer token".
 */
export function extractBearerToken(authorization: string | undefined, search: string): BearerExtraction {
  const candidate = bearerCandidate(authorization, search);
  if (typeof candidate !== 'string') return candidate;
  if (!isB64Token(candidate)) return MALFORMED;
  return { ok: true, token: candidate };
}

/**
 * `extractBearerToken` without the b64token syntax check, for the token guard: it looks the string up
 * in the token cache first, whose keys all passed that check when they were verified, so a cache hit
 * needs no regular expression over the ~300 characters of a JWT. A miss must pass `isB64Token` before
 * anything else reads it.
 */
export function bearerCandidate(authorization: string | undefined, search: string): string | BearerFailure {
  if (search.length > 0 && search.includes('access_token') && new URLSearchParams(search).has('access_token')) return IN_QUERY;
  if (authorization === undefined || authorization.length < 7) return MISSING;
  // The scheme name is case-insensitive (RFC 9110 §11.1); compare the first six characters cheaply.
  const scheme = authorization.slice(0, 6);
  if (scheme !== 'Bearer' && scheme.toLowerCase() !== 'bearer') return MISSING;
  if (authorization.charCodeAt(6) !== 0x20) return MISSING;
  return authorization.slice(7).trim();
}

/** b64token (RFC 6750 §2.1); empty, or a space inside (two credentials, or junk), is not one. */
export function isB64Token(token: string): boolean {
  return token.length > 0 && /^[A-Za-z0-9\-._~+/]+=*$/.test(token);
}
