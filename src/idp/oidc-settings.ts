/**
 * What an OpenID Connect provider is, once a preset has turned the operator's few keys into it: the
 * issuer, the scopes and parameters to send, the claims to read, and the IdP's own extra checks. The
 * one OIDC implementation (src/idp/oidc.ts) runs on these settings for every preset.
 */
import type { ClaimMapping } from './claims.ts';
import type { IdpTokens } from './types.ts';

/** A denial by a preset's own rule (tenant, Workspace domain): `reason` goes to the logs only. */
export interface ClaimCheckFailure {
  reason: string;
}

export interface OidcSettings {
  /** The provider's `type` (for logs). */
  type: string;
  id: string;
  displayName: string;
  /**
   * The issuer the gateway discovers (`<issuer>/.well-known/openid-configuration`) and the ID token's
   * `iss` must equal; for Entra multi-tenant, the discovery document names a `{tenantid}` template.
   */
  issuer: string;
  /**
   * Entra only: the sign-in host actually reached when it is not `https://login.microsoftonline.com`
   * (national clouds, a test stand-in). See `entraDiscovery` in oidc.ts for why this matters.
   */
  entraAuthority?: string;
  clientId: string;
  clientSecret?: string | undefined;
  scopes: string[];
  /** Parameters the preset adds to the authorization request (Google `access_type`, Auth0 `audience`). */
  presetParams: Record<string, string>;
  /** The operator's `authorizationParams`; they may replace presetParams, never the gateway's own. */
  operatorParams: Record<string, string>;
  /** Extra parameters on the refresh request (Entra wants `scope` again). */
  refreshParams?: Record<string, string>;
  /** Read the userinfo endpoint too. Off where the ID token is the identity (Google, Entra). */
  useUserinfo: boolean;
  claims: ClaimMapping;
  /** Seconds of clock skew tolerated on ID token times. */
  clockTolerance: number;
  /**
   * The preset's own rule on the verified ID token claims (Entra `tid`, Google `hd`); a failure is an
   * `access_denied` for the client and the reason in the logs.
   */
  checkClaims?: (claims: Record<string, unknown>) => ClaimCheckFailure | undefined;
  /**
   * Completes the groups when the ID token could not carry them all (Entra groups overage). Returns
   * undefined to keep the groups from the claims.
   */
  resolveGroups?: (claims: Record<string, unknown>, tokens: IdpTokens, context: GroupsContext) => Promise<string[] | undefined>;
}

export interface GroupsContext {
  fetch: typeof fetch;
  warn(fields: Record<string, unknown>, message: string): void;
}
