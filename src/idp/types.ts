/**
 * What the authorization facade needs from an identity provider, whichever it is: where to send the
 * browser, and how to turn the callback into a verified identity plus the IdP's tokens.
 */

/** Per-login secrets the gateway generates for its own leg to the IdP (RFC 9700 §2.1.1: PKCE + state). */
export interface IdpLoginState {
  /** Random, single-use; the key under which the pending login is stored. */
  state: string;
  codeVerifier: string;
  nonce: string;
}

export type { IdpIdentity } from '../core/identity.ts';

import { ErrorCode, GatewayError } from '../core/errors.ts';
import type { IdpIdentity } from '../core/identity.ts';

/** Tokens the IdP issued to the gateway; stored encrypted, never shown to MCP clients. */
export interface IdpTokens {
  accessToken?: string;
  refreshToken?: string;
  idToken?: string;
  /** Epoch seconds. */
  expiresAt?: number;
  scope?: string;
}

export interface IdpLoginResult {
  identity: IdpIdentity;
  tokens: IdpTokens;
}

export interface IdentityProvider {
  readonly id: string;
  readonly displayName: string;
  /** The URL to send the browser to. `callbackUrl` is the gateway's one fixed callback. */
  authorizationUrl(login: IdpLoginState, callbackUrl: string): Promise<URL>;
  /** Completes the login from the callback's query parameters (already checked for `state`). */
  completeLogin(callbackUrl: URL, login: IdpLoginState, expectedCallbackUrl: string): Promise<IdpLoginResult>;
  /**
   * Exchanges the stored refresh token for fresh IdP tokens. Absent when the provider issues none
   * (local accounts). Throws IdpLoginError: `access_denied` when the IdP refused the refresh token
   * (the user must log in again), `temporarily_unavailable` when the IdP could not be reached.
   */
  refresh?(tokens: IdpTokens): Promise<IdpTokens>;
  /**
   * Resolves once what logins need from the IdP has been loaded (OIDC discovery), loading it when it
   * has not; rejects while the IdP cannot be reached. Absent for providers with nothing to load.
   * Used by the readiness check (src/http/health.ts).
   */
  ready?(): Promise<void>;
}

/**
 * An IdP answered the callback with an error, or its tokens failed validation. `publicCode` is what
 * the MCP client gets (an OAuth error code); `detail` goes to the logs only.
 */
export class IdpLoginError extends GatewayError {
  readonly publicCode: 'access_denied' | 'temporarily_unavailable' | 'server_error';
  readonly detail: string;
  constructor(publicCode: IdpLoginError['publicCode'], message: string, detail: string, options?: ErrorOptions) {
    super(ErrorCode.IDP_LOGIN_FAILED, message, options);
    this.name = 'IdpLoginError';
    this.publicCode = publicCode;
    this.detail = detail;
  }
}
