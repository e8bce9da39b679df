/**
 * A generic OAuth 2 identity provider (RFC 6749 authorization code grant) for IdPs without OpenID
 * Connect: the authorization, token and userinfo URLs are configured, and the identity is read from
 * the userinfo JSON through the configured claim paths. PKCE S256 is on by default (RFC 9700 §2.1.1);
 * the gateway's own state protects the callback. As with OIDC, nothing of the MCP client (its
 * client_id, scope or resource) reaches the IdP (docs/identity-providers-github.md).
 */
import { createHash } from 'node:crypto';
import { oauth2AuthMethod, oauth2ClientProblems, reservedParamProblems } from '../config/schema/identity-provider-rules.ts';
import type { OAuth2ProviderConfig } from '../config/schema/providers-oauth2.ts';
import { type Clock, epochSeconds, systemClock } from '../core/clock.ts';
import { refuseProblems } from './config-error.ts';
import { booleanFrom, groupsFrom, subjectFrom, valueAtPath } from './oauth2-claims.ts';
import type { ClientAuthMethod, TokenErrorBody } from './oauth2-http.ts';
import { apiFailure, callbackError, codeFromCallback, getJson, idpTokensFrom, requestTokens } from './oauth2-http.ts';
import type { IdentityProvider, IdpIdentity, IdpLoginResult, IdpLoginState, IdpTokens } from './types.ts';
import { IdpLoginError } from './types.ts';

export interface OAuth2IdentityProviderOptions {
  /** Outbound fetch (see `createOutboundFetch`): trusts the extra CA and has its own deadline. */
  fetch?: typeof fetch;
  /** Stamps `expiresAt` from the IdP's `expires_in` (the gateway's clock; the system clock by default). */
  clock?: Clock;
}

export class OAuth2IdentityProvider implements IdentityProvider {
  readonly id: string;
  readonly displayName: string;
  readonly #config: OAuth2ProviderConfig;
  readonly #fetch: typeof fetch;
  readonly #authMethod: ClientAuthMethod;
  readonly #clock: Clock;

  constructor(config: OAuth2ProviderConfig, options: OAuth2IdentityProviderOptions = {}) {
    this.id = config.id;
    this.displayName = config.displayName;
    this.#config = config;
    // The same rules as the configuration schema, for a config that did not come through it.
    refuseProblems(config.id, [...reservedParamProblems(config.authorizationParams), ...oauth2ClientProblems(config)]);
    this.#clock = options.clock ?? systemClock;
    this.#authMethod = oauth2AuthMethod(config) as ClientAuthMethod;
    this.#fetch = options.fetch ?? fetch;
  }

  async authorizationUrl(login: IdpLoginState, callbackUrl: string): Promise<URL> {
    const url = new URL(this.#config.authorizationUrl);
    for (const [key, value] of Object.entries(this.#config.authorizationParams)) url.searchParams.set(key, value);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('client_id', this.#config.clientId);
    url.searchParams.set('redirect_uri', callbackUrl);
    if (this.#config.scopes.length > 0) url.searchParams.set('scope', this.#config.scopes.join(' '));
    url.searchParams.set('state', login.state);
    if (this.#config.pkce) {
      url.searchParams.set('code_challenge', createHash('sha256').update(login.codeVerifier).digest('base64url'));
      url.searchParams.set('code_challenge_method', 'S256');
    }
    return url;
  }

  async completeLogin(callbackUrl: URL, login: IdpLoginState, expectedCallbackUrl: string): Promise<IdpLoginResult> {
    const label = `identity provider "${this.id}"`;
    const params = callbackUrl.searchParams;
    if (params.has('error')) throw callbackError(params, label);
    const code = codeFromCallback(params, login.state, label);
    const grant: Record<string, string> = { grant_type: 'authorization_code', code, redirect_uri: expectedCallbackUrl };
    if (this.#config.pkce) grant.code_verifier = login.codeVerifier;
    const response = await requestTokens({
      ...this.#tokenClient(label),
      params: grant,
      classify: (error, detail) => classifyTokenError(error, detail, 'code exchange', this.id),
    });
    const identity = await this.#identity(response.access_token, label);
    return { identity, tokens: idpTokensFrom(response, epochSeconds(this.#clock)) };
  }

  async refresh(tokens: IdpTokens): Promise<IdpTokens> {
    const label = `identity provider "${this.id}"`;
    if (!tokens.refreshToken) throw new IdpLoginError('access_denied', 'Sign in again.', `${label}: no refresh token is stored`);
    const response = await requestTokens({
      ...this.#tokenClient(label),
      params: { grant_type: 'refresh_token', refresh_token: tokens.refreshToken },
      classify: (error, detail) => classifyTokenError(error, detail, 'refresh', this.id),
    });
    return idpTokensFrom(response, epochSeconds(this.#clock));
  }

  #tokenClient(label: string) {
    return {
      fetch: this.#fetch,
      url: this.#config.tokenUrl,
      clientId: this.#config.clientId,
      ...(this.#config.clientSecret ? { clientSecret: this.#config.clientSecret } : {}),
      authMethod: this.#authMethod,
      label,
    };
  }

  async #identity(accessToken: string, label: string): Promise<IdpIdentity> {
    const what = `${label} userinfo`;
    const response = await getJson(this.#fetch, this.#config.userinfoUrl, accessToken, what);
    if (response.status !== 200) throw apiFailure(response, what);
    if (response.json === null || typeof response.json !== 'object' || Array.isArray(response.json)) {
      throw apiFailure(response, what, 'the answer is not a JSON object');
    }
    const claims = this.#config.claims;
    const subject = subjectFrom(valueAtPath(response.json, claims.subject));
    if (!subject) {
      throw new IdpLoginError(
        'server_error',
        "The identity provider's user information could not be read.",
        `${what} has no usable subject at "${claims.subject}" (claims.subject)`,
      );
    }
    const identity: IdpIdentity = { subject, groups: groupsFrom(valueAtPath(response.json, claims.groups)) };
    const email = valueAtPath(response.json, claims.email);
    if (typeof email === 'string' && email !== '') {
      identity.email = email;
      // Without a configured verification claim, an email is unverified: email/domain rules need proof.
      identity.emailVerified = claims.emailVerified ? booleanFrom(valueAtPath(response.json, claims.emailVerified)) === true : false;
    }
    const name = valueAtPath(response.json, claims.name);
    if (typeof name === 'string' && name.trim() !== '') identity.name = name;
    return identity;
  }
}

/** RFC 6749 §5.2 errors: a refused refresh token means "log in again"; client errors are the operator's. */
function classifyTokenError(error: TokenErrorBody, detail: string, step: 'code exchange' | 'refresh', providerId: string): IdpLoginError | undefined {
  if (error.error === 'invalid_grant' && step === 'refresh') return new IdpLoginError('access_denied', 'Sign in again.', detail);
  if (error.error === 'invalid_client' || error.error === 'unauthorized_client') {
    return new IdpLoginError(
      'server_error',
      "The identity provider refused the gateway's credentials.",
      `${detail}: check clientId, clientSecret and tokenEndpointAuthMethod of provider "${providerId}"`,
    );
  }
  return undefined;
}
