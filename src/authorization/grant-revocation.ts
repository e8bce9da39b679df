/**
 * Revoking grants, in one place, whatever asks for it (docs/tokens.md, "Revocation"):
 * - oidc-provider, through the adapter's `revokeByGrantId` (RFC 7009 revocation of a refresh token,
 *   refresh-token or authorization-code reuse, RFC 9700 §4.14.2), which calls `grantRevoked` first;
 * - the refresh policy, when the access rules no longer admit the user (refresh-policy.ts);
 * - the revocation of an access token at /revoke (access-token-endpoints.ts);
 * - administration: `revokeUserGrants` and `revokeClientGrants`, usable from a separate process on the
 *   same store (the replicas' revocation lists poll it, src/storage/revocation-list.ts).
 *
 * A revoked grant loses its refresh tokens and codes (deleted from storage) and its access tokens
 * (refused by every replica through the revocation list, within one poll interval elsewhere and at
 * once in the process that revoked it).
 */
import type { AdapterPayload } from 'oidc-provider';
import type { Logger } from '../observability/logger.ts';
import type { RevocationList } from '../storage/revocation-list.ts';
import type { SecretBox } from '../storage/secret-box.ts';
import type { Storage } from '../storage/types.ts';
import { type AdapterPolicy, createAdapterFactory, type GrantRevokedHook } from './adapter.ts';

/** Why a grant was revoked, for the audit line. */
export type GrantRevocationReason = 'access_token_revoked' | 'refresh_denied' | 'user_revoked' | 'client_revoked' | 'admin';

export interface GrantRevokerOptions {
  storage: Storage;
  /** The adapter's (it seals client secrets); unused by revocation itself. */
  secretBox: SecretBox;
  revocations: RevocationList;
  /** The adapter's client-lifetime policy (`registration` in the configuration). */
  adapterPolicy: AdapterPolicy;
  logger: Pick<Logger, 'info'>;
}

export interface GrantRevoker {
  /** For the adapter oidc-provider uses: records the grant in the revocation list before its tokens are deleted. */
  readonly grantRevoked: GrantRevokedHook;
  /** Revokes one grant: its access tokens, refresh tokens and codes. Idempotent. */
  revokeGrant(grantId: string, reason: GrantRevocationReason): Promise<void>;
  /** Revokes every grant of a user (gateway user id `<provider id>:<subject>`); returns the grant ids. */
  revokeUserGrants(userId: string): Promise<string[]>;
  /** Revokes every grant held by a client; returns the grant ids. */
  revokeClientGrants(clientId: string): Promise<string[]>;
}

export function createGrantRevoker(options: GrantRevokerOptions): GrantRevoker {
  const { storage, revocations, logger } = options;
  const grantRevoked: GrantRevokedHook = (grantId) => revocations.revoke(grantId);
  // The same adapter oidc-provider uses, so the tokens are found and deleted exactly as it stores them.
  const Adapter = createAdapterFactory(storage, options.adapterPolicy, options.secretBox, grantRevoked);

  async function revokeGrant(grantId: string, reason: GrantRevocationReason): Promise<void> {
    // revokeByGrantId records the revocation first, then deletes every token indexed under the grant.
    await new Adapter('RefreshToken').revokeByGrantId(grantId);
    await new Adapter('Grant').destroy(grantId);
    logger.info({ event: 'grant.revoked', grantId, reason }, 'grant revoked');
  }

  async function revokeWhere(match: (grant: AdapterPayload) => boolean, reason: GrantRevocationReason): Promise<string[]> {
    const grants = await storage.list<AdapterPayload>('oidc:Grant');
    const revoked: string[] = [];
    for (const { key, value } of grants) {
      if (!match(value)) continue;
      // The payload's own id when it has one: it is what access tokens name.
      const grantId = typeof value.jti === 'string' ? value.jti : key;
      await revokeGrant(grantId, reason);
      revoked.push(grantId);
    }
    return revoked;
  }

  return {
    grantRevoked,
    revokeGrant,
    revokeUserGrants: (userId) => revokeWhere((grant) => grant.accountId === userId, 'user_revoked'),
    revokeClientGrants: (clientId) => revokeWhere((grant) => grant.clientId === clientId, 'client_revoked'),
  };
}
