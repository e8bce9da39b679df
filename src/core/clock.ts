/**
 * The one source of "now" for the expiry decisions the gateway makes itself: storage TTLs and
 * sweeping, the gateway token's `exp` and its verified-token cache, the IdP token's expiry, refresh
 * and the recycling of stdio processes that hold it, and registration rate-limit windows. Passing it
 * in (rather than reading `Date.now()` at each site) lets tests move time forward at once instead of
 * sleeping, and keeps every component of one gateway agreeing on the time. oidc-provider is the
 * exception: it reads the system clock for what it issues and checks, and offers no way to replace it.
 */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
}

/** The machine's clock; the default everywhere outside tests. */
export const systemClock: Clock = { now: () => Date.now() };

/** Epoch seconds, the unit of JWT `exp` (RFC 7519 §4.1.4) and of the IdP's `expires_in` arithmetic. */
export function epochSeconds(clock: Clock): number {
  return Math.floor(clock.now() / 1000);
}
