/**
 * The user's own IdP access token, for the MCP servers configured to receive it (`servers[].idpToken`).
 *
 * Contract (used by the gateway proxy, forward-auth and the stdio supervisor):
 * - returns the current access token of the user's last login, refreshed with the stored refresh token
 *   when it expires within `minValiditySeconds`;
 * - one refresh per user at a time, across concurrent requests and across replicas sharing storage;
 * - the refreshed tokens are stored sealed again (the IdP may rotate the refresh token);
 * - throws IdpReauthenticationRequired when there is no token, or the IdP refused the refresh token,
 *   so the caller answers with a 401 challenge and the client logs in again;
 * - throws IdpLoginError('temporarily_unavailable') when the IdP could not be reached.
 */
import { type Clock, epochSeconds, systemClock } from '../core/clock.ts';
import { ErrorCode, GatewayError } from '../core/errors.ts';
import type { Logger } from '../observability/logger.ts';
import { NS } from '../storage/records.ts';
import type { SecretBox } from '../storage/secret-box.ts';
import type { Storage } from '../storage/types.ts';
import { type IdentityProvider, IdpLoginError, type IdpTokens } from './types.ts';

export interface IdpAccessToken {
  accessToken: string;
  /** Epoch seconds, when the IdP said. */
  expiresAt?: number;
}

export interface IdpTokenSource {
  accessTokenFor(userId: string, minValiditySeconds?: number): Promise<IdpAccessToken>;
}

export class IdpReauthenticationRequired extends GatewayError {
  readonly userId: string;
  constructor(userId: string, message: string, options?: ErrorOptions) {
    super(ErrorCode.IDP_REAUTHENTICATION_REQUIRED, message, options);
    this.name = 'IdpReauthenticationRequired';
    this.userId = userId;
  }
}

export interface IdpTokenSourceDeps {
  storage: Storage;
  secretBox: SecretBox;
  providers: readonly IdentityProvider[];
  logger: Logger;
  /** How long stored IdP tokens are kept after a refresh, in seconds (as at login). */
  retentionSeconds?: number;
  /** Decides when a token is due for a refresh; tests pass one they can move. */
  clock?: Clock;
}

const REFRESH_LOCK_NS = 'idp-refresh-lock';
/** Longest a replica may hold the refresh lock; an IdP call slower than this lets another replica try. */
const REFRESH_LOCK_SECONDS = 20;
const DEFAULT_MIN_VALIDITY = 60;

export function createIdpTokenSource(deps: IdpTokenSourceDeps): IdpTokenSource {
  const tokens = new StoredIdpTokens(deps);
  /** In-process single flight: concurrent requests of one user share one refresh. */
  const inFlight = new Map<string, Promise<IdpAccessToken>>();
  return {
    async accessTokenFor(userId, minValiditySeconds = DEFAULT_MIN_VALIDITY) {
      const current = tokens.fresh(await tokens.load(userId), minValiditySeconds);
      if (current) return current;
      let pending = inFlight.get(userId);
      if (!pending) {
        pending = tokens.refresh(userId, minValiditySeconds).finally(() => inFlight.delete(userId));
        inFlight.set(userId, pending);
      }
      return pending;
    },
  };
}

/** A provider that can exchange a refresh token (local accounts cannot). */
type RefreshingProvider = IdentityProvider & Required<Pick<IdentityProvider, 'refresh'>>;

/** The users' sealed IdP tokens in storage, judged by the clock and refreshed under a lock shared by replicas. */
class StoredIdpTokens {
  readonly #deps: IdpTokenSourceDeps;
  readonly #clock: Clock;
  readonly #providers: Map<string, IdentityProvider>;

  constructor(deps: IdpTokenSourceDeps) {
    this.#deps = deps;
    this.#clock = deps.clock ?? systemClock;
    this.#providers = new Map(deps.providers.map((provider) => [provider.id, provider]));
  }

  async load(userId: string): Promise<IdpTokens | undefined> {
    const sealed = await this.#deps.storage.get<string>(NS.idpTokens, userId);
    return sealed === undefined ? undefined : this.#deps.secretBox.openJson<IdpTokens>(sealed, userId);
  }

  /** The access token, unless it is missing or expires within `minValidity` seconds. */
  fresh(tokens: IdpTokens | undefined, minValidity: number): IdpAccessToken | undefined {
    if (!tokens?.accessToken) return undefined;
    if (tokens.expiresAt !== undefined && tokens.expiresAt - minValidity <= epochSeconds(this.#clock)) return undefined;
    return { accessToken: tokens.accessToken, expiresAt: tokens.expiresAt };
  }

  /** A fresh token for `userId`: refreshed here, or by whichever replica holds the lock (waited for). */
  async refresh(userId: string, minValidity: number): Promise<IdpAccessToken> {
    const provider = this.#providers.get(providerIdOf(userId));
    for (let attempt = 0; ; attempt++) {
      const seen = await this.load(userId);
      const current = this.fresh(seen, minValidity);
      if (current) return current;
      if (!seen?.refreshToken || !canRefresh(provider)) {
        throw new IdpReauthenticationRequired(
          userId,
          seen ? 'the IdP token expired and the IdP gave no refresh token' : 'no IdP token is stored for this user',
        );
      }
      // Across replicas: whoever creates the lock counter refreshes; the others wait for its result.
      if ((await this.#deps.storage.increment(REFRESH_LOCK_NS, userId, REFRESH_LOCK_SECONDS)) === 1)
        return this.#refreshHoldingLock(userId, provider, minValidity);
      if (attempt > REFRESH_LOCK_SECONDS * 10)
        throw new IdpLoginError('temporarily_unavailable', 'IdP token refresh timed out', `waited for another replica to refresh ${userId}`);
      await delay(100);
    }
  }

  /** Refreshes with the lock taken, and gives it back whatever happens. */
  async #refreshHoldingLock(userId: string, provider: RefreshingProvider, minValidity: number): Promise<IdpAccessToken> {
    try {
      return await this.#refreshOnce(userId, provider, minValidity);
    } catch (error) {
      throw await this.#refreshFailed(userId, error);
    } finally {
      await this.#deps.storage.delete(REFRESH_LOCK_NS, userId);
    }
  }

  async #refreshOnce(userId: string, provider: RefreshingProvider, minValidity: number): Promise<IdpAccessToken> {
    // Read again under the lock: another replica may have refreshed between the read before taking
    // the lock and taking it, and an IdP that rotates refresh tokens (RFC 9700 §4.14.2) would answer
    // the old one with invalid_grant, which would log the user out for nothing.
    const tokens = await this.load(userId);
    const refreshedMeanwhile = this.fresh(tokens, minValidity);
    if (refreshedMeanwhile) return refreshedMeanwhile;
    if (!tokens?.refreshToken) throw new IdpReauthenticationRequired(userId, 'no IdP refresh token is stored for this user');
    const merged = mergeRefreshed(tokens, await provider.refresh(tokens));
    await this.#deps.storage.set(NS.idpTokens, userId, this.#deps.secretBox.sealJson(merged, userId), this.#deps.retentionSeconds);
    this.#deps.logger.info({ event: 'idp_token.refreshed', userId, provider: providerIdOf(userId) }, 'IdP token refreshed');
    const result = this.fresh(merged, 0);
    if (!result) throw new IdpReauthenticationRequired(userId, 'the IdP returned no usable access token on refresh');
    return result;
  }

  /**
   * The error to throw for a failed refresh. A refused refresh token ends the IdP session: the stored
   * tokens are dropped and the client must log in again. Other IdP failures are logged and passed on.
   */
  async #refreshFailed(userId: string, error: unknown): Promise<unknown> {
    if (!(error instanceof IdpLoginError)) return error;
    const provider = providerIdOf(userId);
    if (error.publicCode === 'access_denied') {
      this.#deps.logger.warn({ event: 'idp_token.refresh_refused', userId, provider, detail: error.detail }, 'IdP refused the refresh token');
      await this.#deps.storage.delete(NS.idpTokens, userId);
      return new IdpReauthenticationRequired(userId, 'the IdP refused the refresh token', { cause: error });
    }
    this.#deps.logger.warn({ event: 'idp_token.refresh_failed', userId, provider, reason: error.publicCode, detail: error.detail }, 'IdP token refresh failed');
    return error;
  }
}

/** User ids are `<provider id>:<subject>`; the provider that issued the user's tokens refreshes them. */
function providerIdOf(userId: string): string {
  const separator = userId.indexOf(':');
  return separator > 0 ? userId.slice(0, separator) : '';
}

function canRefresh(provider: IdentityProvider | undefined): provider is RefreshingProvider {
  return Boolean(provider?.refresh);
}

/**
 * The stored tokens after a refresh. Some IdPs rotate the refresh token, others return none and expect
 * the old one to be kept; an ID token is not always sent again. The expiry is the new access token's
 * only: the old one's would make a token without `expires_in` look expired at once.
 */
function mergeRefreshed(tokens: IdpTokens, refreshed: IdpTokens): IdpTokens {
  const merged: IdpTokens = { ...tokens, ...refreshed, refreshToken: refreshed.refreshToken ?? tokens.refreshToken };
  if (refreshed.expiresAt === undefined) delete merged.expiresAt;
  return merged;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
