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
import { epochSeconds, systemClock, type Clock } from '../core/clock.ts';
import type { Logger } from '../observability/logger.ts';
import { NS } from '../storage/records.ts';
import type { SecretBox } from '../storage/secret-box.ts';
import type { Storage } from '../storage/types.ts';
import { IdpLoginError, type IdentityProvider, type IdpTokens } from './types.ts';

export interface IdpAccessToken {
  accessToken: string;
  /** Epoch seconds, when the IdP said. */
  expiresAt?: number;
}

export interface IdpTokenSource {
  accessTokenFor(userId: string, minValiditySeconds?: number): Promise<IdpAccessToken>;
}

export class IdpReauthenticationRequired extends Error {
  readonly userId: string;
  constructor(userId: string, message: string, options?: ErrorOptions) {
    super(message, options);
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
  const { storage, secretBox, logger } = deps;
  const clock = deps.clock ?? systemClock;
  const providers = new Map(deps.providers.map((provider) => [provider.id, provider]));
  /** In-process single flight: concurrent requests of one user share one refresh. */
  const inFlight = new Map<string, Promise<IdpAccessToken>>();

  async function load(userId: string): Promise<IdpTokens | undefined> {
    const sealed = await storage.get<string>(NS.idpTokens, userId);
    return sealed === undefined ? undefined : secretBox.openJson<IdpTokens>(sealed, userId);
  }

  function fresh(tokens: IdpTokens | undefined, minValidity: number): IdpAccessToken | undefined {
    if (!tokens?.accessToken) return undefined;
    if (tokens.expiresAt !== undefined && tokens.expiresAt - minValidity <= epochSeconds(clock)) return undefined;
    return { accessToken: tokens.accessToken, expiresAt: tokens.expiresAt };
  }

  async function refresh(userId: string, minValidity: number): Promise<IdpAccessToken> {
    const separator = userId.indexOf(':');
    const providerId = separator > 0 ? userId.slice(0, separator) : '';
    const provider = providers.get(providerId);
    for (let attempt = 0; ; attempt++) {
      const seen = await load(userId);
      const current = fresh(seen, minValidity);
      if (current) return current;
      if (!seen?.refreshToken || !provider?.refresh) {
        throw new IdpReauthenticationRequired(userId, seen ? 'the IdP token expired and the IdP gave no refresh token' : 'no IdP token is stored for this user');
      }
      // Across replicas: whoever creates the lock counter refreshes; the others wait for its result.
      if ((await storage.increment(REFRESH_LOCK_NS, userId, REFRESH_LOCK_SECONDS)) === 1) {
        try {
          // Read again under the lock: another replica may have refreshed between the read above and
          // taking the lock, and an IdP that rotates refresh tokens (RFC 9700 §4.14.2) would answer the
          // old one with invalid_grant, which would log the user out for nothing.
          const tokens = await load(userId);
          const refreshedMeanwhile = fresh(tokens, minValidity);
          if (refreshedMeanwhile) return refreshedMeanwhile;
          if (!tokens?.refreshToken) throw new IdpReauthenticationRequired(userId, 'no IdP refresh token is stored for this user');
          const refreshed = await provider.refresh(tokens);
          // Some IdPs rotate the refresh token, others return none and expect the old one to be kept; an
          // ID token is not always sent again. The expiry is the new access token's only: the old one's
          // would make a token without `expires_in` look expired at once.
          const merged: IdpTokens = { ...tokens, ...refreshed, refreshToken: refreshed.refreshToken ?? tokens.refreshToken };
          if (refreshed.expiresAt === undefined) delete merged.expiresAt;
          await storage.set(NS.idpTokens, userId, secretBox.sealJson(merged, userId), deps.retentionSeconds);
          logger.info({ event: 'idp_token.refreshed', userId, provider: providerId }, 'IdP token refreshed');
          const result = fresh(merged, 0);
          if (!result) throw new IdpReauthenticationRequired(userId, 'the IdP returned no usable access token on refresh');
          return result;
        } catch (error) {
          if (error instanceof IdpLoginError && error.publicCode === 'access_denied') {
            logger.warn({ event: 'idp_token.refresh_refused', userId, provider: providerId, detail: error.detail }, 'IdP refused the refresh token');
            await storage.delete(NS.idpTokens, userId);
            throw new IdpReauthenticationRequired(userId, 'the IdP refused the refresh token', { cause: error });
          }
          if (error instanceof IdpLoginError) {
            logger.warn({ event: 'idp_token.refresh_failed', userId, provider: providerId, reason: error.publicCode, detail: error.detail }, 'IdP token refresh failed');
          }
          throw error;
        } finally {
          await storage.delete(REFRESH_LOCK_NS, userId);
        }
      }
      if (attempt > REFRESH_LOCK_SECONDS * 10) throw new IdpLoginError('temporarily_unavailable', 'IdP token refresh timed out', `waited for another replica to refresh ${userId}`);
      await delay(100);
    }
  }

  return {
    async accessTokenFor(userId, minValiditySeconds = DEFAULT_MIN_VALIDITY) {
      const current = fresh(await load(userId), minValiditySeconds);
      if (current) return current;
      let pending = inFlight.get(userId);
      if (!pending) {
        pending = refresh(userId, minValiditySeconds).finally(() => inFlight.delete(userId));
        inFlight.set(userId, pending);
      }
      return pending;
    },
  };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
