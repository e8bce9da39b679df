/** Records the gateway keeps about people and their approvals, shared by authorization and gateway. */
import type { IdpIdentity } from '../core/identity.ts';

/** Storage namespaces, in one place so backends and admin tools agree on them. */
export const NS = {
  users: 'user',
  consents: 'consent',
  /** The user's sealed IdP tokens. The stored name predates the `idp` naming; kept so existing stores keep working. */
  idpTokens: 'upstream-token',
  pendingLogins: 'pending-login',
  localCodes: 'local-code',
  keys: 'key',
  rateLimits: 'rate',
  /** Refresh replay (src/authorization/refresh-replay.ts): the single-flight claim and the sealed outcome per refresh token hash. */
  refreshClaims: 'refresh-claim',
  refreshOutcomes: 'refresh-outcome',
  /**
   * Revoked grants: the list whose access tokens every replica refuses (src/storage/revocation-list.ts),
   * also the tombstone a token request in flight checks (src/authorization/revoked-grants.ts).
   */
  revokedGrants: 'revoked-grant',
  /** The stamp replicas poll to learn that `revokedGrants` changed. */
  revocationGeneration: 'revocation-generation',
} as const;

/**
 * A person who signed in: the identity their last login recorded (the access rules are evaluated on
 * it again at every refresh), under the gateway's user id `<provider id>:<IdP subject>`, so two IdPs
 * can never collide.
 */
export interface UserRecord extends IdpIdentity {
  id: string;
  provider: string;
  createdAt: number;
  lastLoginAt: number;
}

/** What a user approved for a client, kept for audit and shown on a later consent page. */
export interface ConsentRecord {
  userId: string;
  clientId: string;
  clientName?: string;
  redirectUri: string;
  resource: string;
  scopes: string[];
  approvedAt: number;
}
