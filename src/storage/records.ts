/** Records the gateway keeps about people, shared by authorization and gateway. */
import type { IdpIdentity } from '../core/identity.ts';

/**
 * Storage namespaces, in one place so backends and admin tools agree on them. (Earlier versions also
 * wrote `consent` records that nothing read; those left in a store expire by their own TTL.)
 */
export const NS = {
  users: 'user',
  /** The user's sealed IdP tokens. The stored name predates the `idp` naming; kept so existing stores keep working. */
  idpTokens: 'upstream-token',
  pendingLogins: 'pending-login',
  localCodes: 'local-code',
  keys: 'key',
  rateLimits: 'rate',
  /**
   * Refresh replay (src/authorization/refresh-replay.ts), per refresh token hash: the single-flight claim
   * (a short lease), the sealed outcome, and the mark that a rotation started (kept for the grace period).
   */
  refreshClaims: 'refresh-claim',
  refreshOutcomes: 'refresh-outcome',
  refreshRotations: 'refresh-rotation',
  /**
   * Revoked grants: the list whose access tokens every replica refuses (src/storage/revocation-list.ts),
   * also the tombstone a token request in flight checks (src/authorization/revoked-grants.ts).
   */
  revokedGrants: 'revoked-grant',
  /** The stamp replicas poll to learn that `revokedGrants` changed. */
  revocationGeneration: 'revocation-generation',
  /** Client metadata documents refused a moment ago, not fetched again yet (src/authorization/cimd-gate.ts). */
  cimdFailures: 'cimd-failure',
  /** Who opened each upstream MCP session, under the SHA-256 of server and session id (src/resource-server/session-owners.ts). */
  sessionOwners: 'session-owner',
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
