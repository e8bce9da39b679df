/**
 * No token leaves the token endpoint for a grant that is already revoked (docs/tokens.md).
 *
 * The race this closes: oidc-provider validates the grant early in a token request, then consumes the
 * refresh token (or code), saves the new refresh token and signs the access token. A revocation that
 * runs in between (reuse of an old refresh token, RFC 9700 §4.14.2; a replayed code, RFC 6749 §4.1.2;
 * RFC 7009 revocation) deletes the grant and the tokens it has indexed so far, and the request still
 * answered 200 with a signed JWT access token, which the resource server accepts on its signature
 * alone: an access token was seen issued 19 ms after its grant was revoked, and it worked.
 *
 * The close: revocation first writes a tombstone for the grant (in the gateway, the grant's entry in
 * the revocation list, src/storage/revocation-list.ts, in the same namespace; `markGrantRevoked` for an
 * adapter built without one; either way the adapter's revokeByGrantId writes it before it deletes
 * anything), and every successful token response is
 * checked against it after the tokens were saved and before it is sent. Either the check sees the
 * tombstone (the answer becomes invalid_grant and the new refresh token is destroyed), or the
 * tombstone was written after the check, so the revocation reads the grant's token index after the new
 * refresh token was indexed, and deletes it; the response then precedes the revocation.
 */
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from '../observability/logger.ts';
import { NS } from '../storage/records.ts';
import type { Storage } from '../storage/types.ts';

/**
 * How long a tombstone is kept. The grant itself is gone after a revocation, so later requests fail
 * on their own; the tombstone only has to outlive requests already in flight, which take seconds.
 */
const TOMBSTONE_TTL_SECONDS = 3600;

/** Called before a revocation deletes anything, so issuance that checks afterwards sees it. */
export async function markGrantRevoked(storage: Storage, grantId: string): Promise<void> {
  await storage.set(NS.revokedGrants, grantId, true, TOMBSTONE_TTL_SECONDS);
}

/** True when the grant is being or has been revoked (a tombstone), or no longer exists. */
export async function grantRevoked(storage: Storage, ctx: KoaContextWithOIDC, grantId: string): Promise<boolean> {
  if ((await storage.get(NS.revokedGrants, grantId)) !== undefined) return true;
  return (await ctx.oidc.provider.Grant.find(grantId, { ignoreExpiration: true })) === undefined;
}

/** The grant a successful token response was issued for, if any. */
function issuedGrantId(ctx: KoaContextWithOIDC): string | undefined {
  const { AccessToken, RefreshToken, Grant } = ctx.oidc.entities;
  return AccessToken?.grantId ?? RefreshToken?.grantId ?? Grant?.jti;
}

/** The answer a revoked grant gets: oidc-provider's own invalid_grant, nothing more. */
export function answerInvalidGrant(ctx: KoaContextWithOIDC): void {
  ctx.status = 400;
  ctx.type = 'application/json; charset=utf-8';
  ctx.body = { error: 'invalid_grant', error_description: 'grant request is invalid' };
}

/**
 * Koa middleware for oidc-provider (`provider.use`): after the token endpoint produced a success, the
 * grant is checked once more; a revoked grant turns the answer into invalid_grant.
 */
export function revokedGrantGuard(storage: Storage, logger: Logger) {
  return async function refuseTokensForRevokedGrants(ctx: KoaContextWithOIDC, next: () => Promise<unknown>): Promise<void> {
    await next();
    if (ctx.oidc?.route !== 'token' || ctx.status !== 200) return;
    const grantId = issuedGrantId(ctx);
    if (grantId === undefined || !(await grantRevoked(storage, ctx, grantId))) return;
    // The new refresh token was never delivered; it must not outlive its grant in storage either.
    await ctx.oidc.entities.RefreshToken?.destroy();
    answerInvalidGrant(ctx);
    logger.warn(
      {
        event: 'token.refused',
        clientId: ctx.oidc.client?.clientId,
        grantType: ctx.oidc.params?.grant_type,
        grantId,
        error: 'invalid_grant',
        detail: 'grant revoked during issuance',
      },
      'token request refused: its grant was revoked while the tokens were being issued',
    );
  };
}
