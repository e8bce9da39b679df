/**
 * Whether a refresh may still issue tokens to a user. `false` becomes `invalid_grant`, which sends the
 * client through a full authorization (consent, IdP login, the rules again):
 * - the access rules are evaluated again against what the user's last login recorded, so tightening
 *   a rule takes effect within one access-token lifetime rather than at the refresh token's expiry;
 * - a server that receives the user's IdP token needs a live IdP session: once the IdP refused its
 *   refresh token (src/idp/idp-tokens.ts dropped the tokens), a new access token would only meet a
 *   401 at the gateway, and clients such as the SDK then give up instead of logging in again.
 * A refused refresh also revokes the grant (grant-revocation.ts), so the access tokens already issued
 * under it stop at once rather than at their expiry: the rules that refuse a new token refuse the old.
 */
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from '../observability/logger.ts';
import { evaluateAccess } from '../policy/access.ts';
import { NS, type UserRecord } from '../storage/records.ts';
import type { Storage } from '../storage/types.ts';
import type { GrantRevoker } from './grant-revocation.ts';
import { type ProtectedResource, resolveResource } from './resources.ts';

export interface RefreshPolicyOptions {
  resources: ProtectedResource[];
  canonicalizeResource: (value: string) => string | undefined;
  storage: Storage;
  logger: Logger;
  /** Revokes the grant of a refused refresh. */
  grants: Pick<GrantRevoker, 'revokeGrant'>;
}

/** The refresh token oidc-provider is about to honour: its grant and the resource it was bound to. */
interface RefreshingToken {
  grantId?: string;
  resource?: unknown;
}

export type RefreshPolicy = (ctx: KoaContextWithOIDC, user: UserRecord, token: RefreshingToken) => Promise<boolean>;

export function createRefreshPolicy(options: RefreshPolicyOptions): RefreshPolicy {
  const allowed = refreshDecision(options);
  return async (ctx, user, token) => {
    if (await allowed(ctx, user, token)) return true;
    if (token.grantId) await options.grants.revokeGrant(token.grantId, 'refresh_denied');
    return false;
  };
}

function refreshDecision(options: RefreshPolicyOptions): RefreshPolicy {
  return async (ctx, user, token) => {
    const servers = await refreshTargets(ctx, token, options);
    const clientId = ctx.oidc.client?.clientId;
    for (const server of servers) {
      if (!server.access) continue;
      const decision = evaluateAccess(user, user.provider, server.access);
      if (!decision.allowed) {
        options.logger.info(
          { event: 'refresh.denied', userId: user.id, server: server.name, clientId, reason: decision.reason },
          'access rules no longer admit the user; refresh refused',
        );
        return false;
      }
    }
    if (servers.some((server) => server.requiresIdpToken) && (await options.storage.get(NS.idpTokens, user.id)) === undefined) {
      options.logger.info({ event: 'refresh.denied', userId: user.id, clientId, reason: 'the IdP session is over' }, 'IdP session over; refresh refused');
      return false;
    }
    return true;
  };
}

/** The MCP servers a refresh is for: the refresh token's resource, the request's, or the default. */
async function refreshTargets(ctx: KoaContextWithOIDC, token: RefreshingToken, options: RefreshPolicyOptions): Promise<ProtectedResource[]> {
  // A grant with no resource scopes records no resource, so the token and the request are read too.
  const grant = token.grantId ? await refreshedGrant(ctx, token.grantId) : undefined;
  const indicators = [token.resource, ctx.oidc.params?.resource, Object.keys(grant?.resources ?? {})]
    .flat()
    .filter((value): value is string => typeof value === 'string');
  if (indicators.length === 0) return options.resources.slice(0, 1);
  return indicators.map((indicator) => resolveResource(options.resources, options.canonicalizeResource, indicator)).filter((server) => server !== undefined);
}

/**
 * The refresh token's grant: the one oidc-provider's refresh_token grant loaded and validated just
 * before it looked the account up (its `Grant` entity), else read from storage. Saves a storage read
 * per refresh; the entity is the same record, read moments earlier in this very request.
 */
async function refreshedGrant(ctx: KoaContextWithOIDC, grantId: string): Promise<{ resources?: Record<string, unknown> } | undefined> {
  const loaded = ctx.oidc.entities.Grant as { jti?: string; resources?: Record<string, unknown> } | undefined;
  if (loaded?.jti === grantId) return loaded;
  return ctx.oidc.provider.Grant.find(grantId);
}
