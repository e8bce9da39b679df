/**
 * A small per-user cache in front of the IdP token source (src/idp/idp-tokens.ts), so a request to
 * a server that receives the user's IdP token costs no storage read or decryption while the token is
 * known to be fresh. Only the gateway process holds it; nothing is written anywhere.
 *
 * An entry is used until `REFRESH_MARGIN_MS` before the IdP's stated expiry (the source refreshes
 * within 60 s of expiry, so the cache hands back to it in time). A token without a stated expiry is
 * kept for `UNDATED_TTL_MS` only, so a new login's token is picked up soon.
 */
import { type Clock, systemClock } from '../core/clock.ts';
import type { IdpTokenSource } from '../idp/idp-tokens.ts';

/** Leave the source this much time before expiry to refresh. Larger than the source's own 60 s. */
const REFRESH_MARGIN_MS = 90_000;
const UNDATED_TTL_MS = 60_000;

interface Entry {
  accessToken: string;
  /** Epoch ms after which the entry is not used. */
  usableUntil: number;
}

export interface IdpTokenCache {
  /** The cached token when it is fresh, synchronously; otherwise undefined. */
  peek(userId: string): string | undefined;
  /** The fresh token, from the cache or the source (which may refresh it). Rejects as the source does. */
  get(userId: string): Promise<string>;
  /** Forgets a user's token (after the IdP refused it). */
  forget(userId: string): void;
  clear(): void;
}

export function createIdpTokenCache(source: IdpTokenSource, options: { maxEntries?: number; clock?: Clock } = {}): IdpTokenCache {
  const clock = options.clock ?? systemClock;
  const max = Math.max(1, options.maxEntries ?? 10_000);
  const entries = new Map<string, Entry>();

  function peek(userId: string): string | undefined {
    const entry = entries.get(userId);
    if (entry === undefined) return undefined;
    if (entry.usableUntil <= clock.now()) {
      entries.delete(userId);
      return undefined;
    }
    return entry.accessToken;
  }

  return {
    peek,
    async get(userId) {
      const cached = peek(userId);
      if (cached !== undefined) return cached;
      const token = await source.accessTokenFor(userId);
      const usableUntil = token.expiresAt === undefined ? clock.now() + UNDATED_TTL_MS : token.expiresAt * 1000 - REFRESH_MARGIN_MS;
      if (usableUntil > clock.now()) {
        entries.delete(userId);
        entries.set(userId, { accessToken: token.accessToken, usableUntil });
        if (entries.size > max) {
          const oldest = entries.keys().next();
          if (!oldest.done) entries.delete(oldest.value);
        }
      }
      return token.accessToken;
    },
    forget: (userId) => void entries.delete(userId),
    clear: () => entries.clear(),
  };
}
