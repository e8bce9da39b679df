/**
 * Who a person is, as every room sees it: the identity an IdP vouched for, and the gateway's user id.
 * It lives in core because the access policy, the identity providers, storage and the authorization
 * server all speak of it, and none of them should have to import another to do so.
 */

/** The identity the IdP vouched for. `subject` is the IdP's stable id, not yet namespaced. */
export interface IdpIdentity {
  subject: string;
  email?: string;
  emailVerified?: boolean;
  name?: string;
  /** Group names or ids (Entra groups and app roles, Okta/Keycloak groups...), for policy and headers. */
  groups: string[];
  /** Entra tenant id (`tid`), for tenant allow-lists. */
  tenantId?: string;
  /** GitHub organisations (logins) the user belongs to, when the provider reads them. */
  organizations?: string[];
  /** GitHub teams as `org/team-slug`, when the provider reads them. */
  teams?: string[];
}

/**
 * The gateway's user id: `<provider id>:<IdP subject>`, so two identity providers can never give
 * two people the same id.
 */
export function userIdFor(providerId: string, subject: string): string {
  return `${providerId}:${subject}`;
}
