/**
 * A generic OpenID Connect identity provider, found by its issuer URL (OIDC Discovery 1.0), reached
 * through the one confidential app the operator registered there. The gateway runs its own
 * authorization-code flow with its own PKCE, state and nonce: nothing of the MCP client (its
 * client_id, scope or resource) ever reaches the IdP (CLIENTS.md §3).
 */
import * as client from 'openid-client';
import { isLoopbackHost } from '../config/schema.ts';
import type { OidcProviderConfig } from '../config/schema.ts';
import { UpstreamLoginError } from './types.ts';
import type {
  IdentityProvider, UpstreamIdentity, UpstreamLoginResult, UpstreamLoginState, UpstreamTokens,
} from './types.ts';

export interface OidcIdentityProviderOptions {
  /** Outbound fetch (see `createOutboundFetch`): trusts the extra CA and has its own deadline. */
  fetch?: typeof fetch;
  /** Deadline openid-client puts on each IdP request. Default 10 s. */
  timeoutMs?: number;
  /** Seconds of clock difference tolerated on ID token `iat`/`exp`/`nbf`. openid-client's default is 30. */
  clockToleranceSeconds?: number;
}

/**
 * Authorization request parameters the gateway sets itself. An operator's `authorizationParams` may not
 * replace them: they carry the flow's security (RFC 9700 §2.1.1) or its shape (a GET callback with a code).
 */
const RESERVED_PARAMS = new Set([
  'client_id', 'redirect_uri', 'response_type', 'response_mode', 'scope', 'state', 'nonce',
  'code_challenge', 'code_challenge_method', 'request', 'request_uri',
]);

/** Callback `error` values that mean "this user may not sign in" rather than "something is broken". */
const DENIAL_ERRORS = new Set([
  'access_denied', 'login_required', 'consent_required', 'interaction_required', 'account_selection_required',
]);

/** A configuration problem found at start-up; the stable `code` lets the CLI print it without a stack. */
export class OidcConfigError extends Error {
  readonly code = 'ERR_OIDC_PROVIDER_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'OidcConfigError';
  }
}

export class OidcIdentityProvider implements IdentityProvider {
  readonly id: string;
  readonly displayName: string;
  readonly #config: OidcProviderConfig;
  readonly #issuer: URL;
  readonly #fetch: typeof fetch | undefined;
  readonly #timeoutSeconds: number;
  readonly #clockTolerance: number | undefined;
  /** The in-flight or finished discovery; dropped on failure so the next login tries again. */
  #discovery: Promise<client.Configuration> | undefined;

  constructor(config: OidcProviderConfig, options: OidcIdentityProviderOptions = {}) {
    this.id = config.id;
    this.displayName = config.displayName;
    this.#config = config;
    this.#issuer = checkIssuer(config.issuer);
    const problems: string[] = [];
    if (!config.scopes.includes('openid')) problems.push('scopes must include "openid": the identity comes from the ID token');
    for (const key of Object.keys(config.authorizationParams)) {
      if (RESERVED_PARAMS.has(key)) problems.push(`authorizationParams.${key} is set by the gateway itself and cannot be configured`);
    }
    if (problems.length > 0) throw new OidcConfigError(`identity provider "${config.id}": ${problems.join('; ')}`);
    this.#fetch = options.fetch;
    // openid-client counts in seconds; round up so a sub-second setting does not become "no timeout".
    this.#timeoutSeconds = Math.max(1, Math.ceil((options.timeoutMs ?? 10_000) / 1000));
    this.#clockTolerance = options.clockToleranceSeconds;
  }

  async authorizationUrl(login: UpstreamLoginState, callbackUrl: string): Promise<URL> {
    const configuration = await this.#configuration();
    const parameters: Record<string, string> = {
      ...this.#config.authorizationParams,
      redirect_uri: callbackUrl,
      response_type: 'code',
      scope: this.#config.scopes.join(' '),
      state: login.state,
      nonce: login.nonce,
      // S256 even when discovery omits code_challenge_methods_supported (Entra does, and supports it).
      code_challenge: await client.calculatePKCECodeChallenge(login.codeVerifier),
      code_challenge_method: 'S256',
    };
    return client.buildAuthorizationUrl(configuration, parameters);
  }

  async completeLogin(callbackUrl: URL, login: UpstreamLoginState, expectedCallbackUrl: string): Promise<UpstreamLoginResult> {
    const configuration = await this.#configuration();
    // openid-client takes the redirect_uri for the token request from the URL it is given. Behind a
    // proxy the URL the gateway saw may differ from the one the IdP was told, so rebuild it from the
    // configured callback plus the response parameters.
    const response = new URL(expectedCallbackUrl);
    response.search = callbackUrl.search;
    response.hash = '';

    let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
    try {
      tokens = await client.authorizationCodeGrant(configuration, response, {
        pkceCodeVerifier: login.codeVerifier,
        expectedState: login.state,
        expectedNonce: login.nonce,
        idTokenExpected: true,
      });
    } catch (error) {
      throw toLoginError(error, 'code exchange');
    }
    const idClaims = tokens.claims();
    if (!idClaims) throw new UpstreamLoginError('server_error', 'The identity provider returned no ID token.', 'token response without id_token');

    let claims: Record<string, unknown> = { ...idClaims };
    if (configuration.serverMetadata().userinfo_endpoint && tokens.access_token) {
      try {
        // fetchUserInfo refuses a response whose `sub` differs from the ID token's (OIDC Core §5.3.2).
        const userinfo = await client.fetchUserInfo(configuration, tokens.access_token, idClaims.sub);
        claims = { ...claims, ...userinfo };
      } catch (error) {
        throw toLoginError(error, 'userinfo');
      }
    }
    return { identity: identityFrom(idClaims.sub, claims), tokens: tokensFrom(tokens) };
  }

  /** Discovery, cached; an IdP that is down at start-up only fails logins until it answers again. */
  #configuration(): Promise<client.Configuration> {
    this.#discovery ??= this.#discover().catch((error: unknown) => {
      this.#discovery = undefined;
      throw error;
    });
    return this.#discovery;
  }

  async #discover(): Promise<client.Configuration> {
    const options: client.DiscoveryRequestOptions = { timeout: this.#timeoutSeconds };
    if (this.#fetch) options[client.customFetch] = this.#fetch as client.CustomFetch;
    // Only a loopback issuer gets here over http (checked in the constructor): local development.
    if (this.#issuer.protocol === 'http:') options.execute = [client.allowInsecureRequests];
    let configuration: client.Configuration;
    try {
      configuration = await client.discovery(this.#issuer, this.#config.clientId, this.#clientMetadata(), undefined, options);
    } catch (error) {
      const detail = `discovery of ${this.#issuer.href} failed: ${describe(error)}`;
      throw new UpstreamLoginError('temporarily_unavailable', 'The identity provider could not be reached.', detail, { cause: error });
    }
    const auth = this.#clientAuthentication(configuration.serverMetadata());
    // The client auth method depends on the metadata, so the Configuration is rebuilt with it; this costs
    // nothing (no request) and keeps discovery's fetch, timeout and http allowance.
    const rebuilt = new client.Configuration(configuration.serverMetadata(), this.#config.clientId, this.#clientMetadata(), auth);
    if (this.#fetch) rebuilt[client.customFetch] = this.#fetch as client.CustomFetch;
    rebuilt.timeout = this.#timeoutSeconds;
    if (this.#issuer.protocol === 'http:') client.allowInsecureRequests(rebuilt);
    return rebuilt;
  }

  #clientMetadata(): Partial<client.ClientMetadata> {
    const metadata: Partial<client.ClientMetadata> = {};
    if (this.#config.clientSecret) metadata.client_secret = this.#config.clientSecret;
    if (this.#clockTolerance !== undefined) metadata[client.clockTolerance] = this.#clockTolerance;
    return metadata;
  }

  /**
   * The confidential client's authentication: the first of client_secret_basic / client_secret_post in
   * the IdP's list (RFC 8414 §2: absent means client_secret_basic). Without a secret, a public client.
   */
  #clientAuthentication(metadata: client.ServerMetadata): client.ClientAuth {
    const secret = this.#config.clientSecret;
    if (!secret) return client.None();
    const supported = metadata.token_endpoint_auth_methods_supported ?? ['client_secret_basic'];
    const method = supported.find((m) => m === 'client_secret_basic' || m === 'client_secret_post');
    if (method === 'client_secret_post') return client.ClientSecretPost(secret);
    if (method === 'client_secret_basic') return client.ClientSecretBasic(secret);
    throw new UpstreamLoginError(
      'server_error',
      'The identity provider does not accept the configured client credentials.',
      `token_endpoint_auth_methods_supported (${supported.join(', ')}) has neither client_secret_basic nor client_secret_post`,
    );
  }
}

/** https, or http on loopback only (local development); anything else is refused at start-up. */
function checkIssuer(issuer: string): URL {
  const url = URL.parse(issuer);
  if (!url) throw new OidcConfigError(`issuer "${issuer}" is not a URL`);
  if (url.protocol === 'https:') return url;
  if (url.protocol === 'http:' && isLoopbackHost(url.hostname)) return url;
  throw new OidcConfigError(`issuer "${issuer}" must use https (http is allowed only for localhost/127.0.0.1/[::1])`);
}

function identityFrom(subject: string, claims: Record<string, unknown>): UpstreamIdentity {
  const identity: UpstreamIdentity = { subject, groups: stringArray(claims['groups']) ?? [] };
  if (typeof claims['email'] === 'string') identity.email = claims['email'];
  const verified = claims['email_verified'];
  // Some IdPs (older Cognito, some SAML bridges) send the boolean as a string.
  if (typeof verified === 'boolean') identity.emailVerified = verified;
  else if (verified === 'true' || verified === 'false') identity.emailVerified = verified === 'true';
  const name = claims['name'] ?? claims['preferred_username'];
  if (typeof name === 'string' && name !== '') identity.name = name;
  return identity;
}

function stringArray(value: unknown): string[] | undefined {
  return Array.isArray(value) && value.every((item) => typeof item === 'string') ? [...value] : undefined;
}

function tokensFrom(response: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers): UpstreamTokens {
  const tokens: UpstreamTokens = {};
  if (response.access_token) tokens.accessToken = response.access_token;
  if (response.refresh_token) tokens.refreshToken = response.refresh_token;
  if (response.id_token) tokens.idToken = response.id_token;
  const expiresIn = response.expiresIn();
  if (expiresIn !== undefined) tokens.expiresAt = Math.floor(Date.now() / 1000) + expiresIn;
  if (response.scope) tokens.scope = response.scope;
  return tokens;
}

/**
 * Maps whatever openid-client (or the network) threw into the three outcomes the MCP client may learn.
 * What exactly failed goes into `detail`, for the logs only.
 */
function toLoginError(error: unknown, step: 'code exchange' | 'userinfo'): UpstreamLoginError {
  if (error instanceof UpstreamLoginError) return error;
  const options = { cause: error };
  const endpoint = step === 'userinfo' ? 'userinfo endpoint' : 'token endpoint';
  if (error instanceof client.AuthorizationResponseError) {
    const detail = `IdP callback error=${error.error}${error.error_description ? ` (${error.error_description})` : ''}`;
    if (DENIAL_ERRORS.has(error.error)) return new UpstreamLoginError('access_denied', 'The identity provider denied the sign-in.', detail, options);
    if (error.error === 'temporarily_unavailable' || error.error === 'server_error') {
      return new UpstreamLoginError('temporarily_unavailable', 'The identity provider is unavailable.', detail, options);
    }
    return new UpstreamLoginError('server_error', 'The identity provider refused the sign-in request.', detail, options);
  }
  if (error instanceof client.ResponseBodyError) {
    const detail = `${endpoint} answered ${error.status} error=${error.error}${error.error_description ? ` (${error.error_description})` : ''}`;
    if (error.status >= 500 || error.status === 429) return unavailable(detail, options);
    return new UpstreamLoginError('server_error', 'The identity provider refused the sign-in.', detail, options);
  }
  if (error instanceof client.ClientError) {
    const status = responseStatus(error.cause);
    if (status !== undefined && (status >= 500 || status === 429)) return unavailable(`${endpoint} answered ${status}`, options);
    if (error.code === 'OAUTH_TIMEOUT' || error.code === 'OAUTH_ABORT') return unavailable(`${endpoint} request timed out`, options);
    return new UpstreamLoginError('server_error', 'The identity provider\'s answer could not be verified.', `${step}: ${describe(error)}`, options);
  }
  // fetch() rejects with a TypeError for connection refused/reset, DNS and TLS failures.
  if (error instanceof TypeError) return unavailable(`${endpoint} request failed: ${describe(error)}`, options);
  return new UpstreamLoginError('server_error', 'The sign-in could not be completed.', `${step}: ${describe(error)}`, options);
}

function unavailable(detail: string, options: ErrorOptions): UpstreamLoginError {
  return new UpstreamLoginError('temporarily_unavailable', 'The identity provider is unavailable.', detail, options);
}

function responseStatus(value: unknown): number | undefined {
  return value instanceof Object && 'status' in value && typeof value.status === 'number' && 'headers' in value ? value.status : undefined;
}

/**
 * One line saying which check failed: oauth4webapi puts the claim (`iss`, `aud`, `nonce`, `exp`, …) or
 * attribute that did not match on the error's cause; network errors hide the reason one level down.
 */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const parts = [error.message];
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') parts.push(`[${code}]`);
  let cause: unknown = error.cause;
  for (let depth = 0; depth < 4 && cause !== undefined; depth++) {
    if (!(cause instanceof Error)) {
      const check = checkOf(cause);
      if (check) parts.push(check);
      break;
    }
    parts.push(`<- ${cause.message}`);
    cause = cause.cause;
  }
  return parts.join(' ');
}

/** Names the failed check; the expected value only for public ones (never a nonce or state). */
function checkOf(value: unknown): string | undefined {
  if (!(value instanceof Object)) return undefined;
  const record = value as Record<string, unknown>;
  const name = record['claim'] ?? record['attribute'];
  if (typeof name !== 'string') return undefined;
  const expected = record['expected'];
  const showExpected = expected !== undefined && ['iss', 'aud', 'azp', 'issuer'].includes(name);
  return `(check: ${name}${showExpected ? `, expected ${JSON.stringify(expected)}` : ''})`;
}
