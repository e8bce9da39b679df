/** Records the gateway keeps about people and their approvals, shared by authorization and gateway. */

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
} as const;

/** A person who signed in. `id` is `<provider id>:<IdP subject>`, so two IdPs can never collide. */
export interface UserRecord {
  id: string;
  provider: string;
  subject: string;
  email?: string;
  emailVerified?: boolean;
  name?: string;
  groups: string[];
  /** Entra tenant id, GitHub organisations and teams, when the provider supplies them (policy input). */
  tenantId?: string;
  organizations?: string[];
  teams?: string[];
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
