/**
 * What the authorization facade needs from an identity provider, whichever it is: where to send the
 * browser, and how to turn the callback into a verified identity plus the IdP's tokens.
 */

/** Per-login secrets the gateway generates for its own leg to the IdP (RFC 9700 §2.1.1: PKCE + state). */
export interface UpstreamLoginState {
  /** Random, single-use; the key under which the pending login is stored. */
  state: string;
  codeVerifier: string;
  nonce: string;
}

/** The identity the IdP vouched for. `subject` is the IdP's stable id, not yet namespaced. */
export interface UpstreamIdentity {
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

/** Tokens the IdP issued to the gateway; stored encrypted, never shown to MCP clients. */
export interface UpstreamTokens {
  accessToken?: string;
  refreshToken?: string;
  idToken?: string;
  /** Epoch seconds. */
  expiresAt?: number;
  scope?: string;
}

export interface UpstreamLoginResult {
  identity: UpstreamIdentity;
  tokens: UpstreamTokens;
}

export interface IdentityProvider {
  readonly id: string;
  readonly displayName: string;
  /** The URL to send the browser to. `callbackUrl` is the gateway's one fixed callback. */
  authorizationUrl(login: UpstreamLoginState, callbackUrl: string): Promise<URL>;
  /** Completes the login from the callback's query parameters (already checked for `state`). */
  completeLogin(callbackUrl: URL, login: UpstreamLoginState, expectedCallbackUrl: string): Promise<UpstreamLoginResult>;
  /**
   * Exchanges the stored refresh token for fresh IdP tokens. Absent when the provider issues none
   * (local accounts). Throws UpstreamLoginError: `access_denied` when the IdP refused the refresh token
   * (the user must log in again), `temporarily_unavailable` when the IdP could not be reached.
   */
  refresh?(tokens: UpstreamTokens): Promise<UpstreamTokens>;
}

/**
 * An IdP answered the callback with an error, or its tokens failed validation. `publicCode` is what
 * the MCP client gets (an OAuth error code); `detail` goes to the logs only.
 */
export class UpstreamLoginError extends Error {
  readonly publicCode: 'access_denied' | 'temporarily_unavailable' | 'server_error';
  readonly detail: string;
  constructor(publicCode: UpstreamLoginError['publicCode'], message: string, detail: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'UpstreamLoginError';
    this.publicCode = publicCode;
    this.detail = detail;
  }
}
