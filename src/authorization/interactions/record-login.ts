/**
 * What a successful login leaves behind: the user record (the identity as last seen, which refresh
 * re-checks the access rules against) and the IdP's tokens, sealed. What the person approved lives in
 * the oidc-provider grant (client, resource, scopes) as long as the client's tokens do, and in the
 * `login.succeeded` audit log line; no separate consent record is kept, because consent is asked at
 * every authorization (src/authorization/provider.ts, interactionPolicyAlwaysLogin) and nothing would
 * read one.
 */

import { userIdFor } from '../../core/identity.ts';
import type { IdpLoginResult } from '../../idp/types.ts';
import { NS, type UserRecord } from '../../storage/records.ts';
import { type InteractionContext, nowSeconds } from './context.ts';
import type { PendingLogin } from './pending-login.ts';

export async function recordLogin(
  ctx: Pick<InteractionContext, 'storage' | 'secretBox' | 'tokenRetention' | 'clock'>,
  pending: PendingLogin,
  login: IdpLoginResult,
): Promise<UserRecord> {
  const { identity } = login;
  const userId = userIdFor(pending.providerId, identity.subject);
  const now = nowSeconds(ctx);
  const existing = await ctx.storage.get<UserRecord>(NS.users, userId);
  const user: UserRecord = {
    id: userId,
    provider: pending.providerId,
    subject: identity.subject,
    email: identity.email,
    emailVerified: identity.emailVerified,
    name: identity.name,
    groups: identity.groups,
    tenantId: identity.tenantId,
    organizations: identity.organizations,
    teams: identity.teams,
    createdAt: existing?.createdAt ?? now,
    lastLoginAt: now,
  };
  await ctx.storage.set(NS.users, userId, user);
  if (login.tokens.accessToken || login.tokens.refreshToken) {
    // Associated data = the user id: a sealed token copied onto another user's record will not open.
    await ctx.storage.set(NS.idpTokens, userId, ctx.secretBox.sealJson(login.tokens, userId), ctx.tokenRetention.idpTokens);
  }
  return user;
}
