/**
 * An OpenID Connect identity provider, found by its issuer URL (OIDC Discovery 1.0), reached through
 * the one confidential app the operator registered there. Every OIDC preset (Entra, Google, Okta,
 * Keycloak, Auth0, authentik, Cognito, generic) runs on this one implementation with its own settings
 * (src/idp/presets/). The gateway runs its own authorization-code flow with its own PKCE, state
 * and nonce: nothing of the MCP client (its client_id, scope or resource) ever reaches the IdP
 * (docs/identity-providers.md).
 */
import * as client from 'openid-client';
import { issuerProblems, openidScopeProblems, reservedParamProblems } from '../config/schema/identity-provider-rules.ts';
import { type Clock, epochSeconds, systemClock } from '../core/clock.ts';
import type { Logger } from '../observability/logger.ts';
import { identityFromClaims, MissingSubjectClaim } from './claims.ts';
import { refuseProblems } from './config-error.ts';
import type { OidcSettings } from './oidc-settings.ts';
import type { IdentityProvider, IdpIdentity, IdpLoginResult, IdpLoginState, IdpTokens } from './types.ts';
import { IdpLoginError } from './types.ts';

export interface OidcIdentityProviderOptions {
  /** Outbound fetch (see `createOutboundFetch`): trusts the extra CA and has its own deadline. */
  fetch?: typeof fetch;
  /** Deadline openid-client puts on each IdP request. Default 10 s. */
  timeoutMs?: number;
  /** For warnings that are not login failures (groups overage without Graph). */
  logger?: Logger;
  /** Stamps `expiresAt` from the IdP's `expires_in` (the gateway's clock; the system clock by default). */
  clock?: Clock;
}

/** The host whose multi-tenant issuer template openid-client understands (see `entraDiscovery`). */
const ENTRA_ORIGIN = 'https://login.microsoftonline.com';

/** Callback `error` values that mean "this user may not sign in" rather than "something is broken". */
const DENIAL_ERRORS = new Set(['access_denied', 'login_required', 'consent_required', 'interaction_required', 'account_selection_required']);

export class OidcIdentityProvider implements IdentityProvider {
  readonly id: string;
  readonly displayName: string;
  readonly type: string;
  readonly #settings: OidcSettings;
  readonly #issuer: URL;
  readonly #fetch: typeof fetch | undefined;
  readonly #timeoutSeconds: number;
  readonly #logger: Logger | undefined;
  readonly #clock: Clock;
  /** The in-flight or finished discovery; dropped on failure so the next login tries again. */
  #discovery: Promise<client.Configuration> | undefined;

  constructor(settings: OidcSettings, options: OidcIdentityProviderOptions = {}) {
    this.id = settings.id;
    this.displayName = settings.displayName;
    this.type = settings.type;
    this.#settings = settings;
    // The same rules as the configuration schema, for settings that did not come through it.
    refuseProblems(settings.id, [
      ...issuerProblems(settings.entraAuthority ?? settings.issuer),
      ...openidScopeProblems(settings.scopes),
      ...reservedParamProblems(settings.operatorParams),
    ]);
    this.#issuer = new URL(settings.entraAuthority ?? settings.issuer);
    this.#fetch = options.fetch;
    // openid-client counts in seconds; round up so a sub-second setting does not become "no timeout".
    this.#timeoutSeconds = Math.max(1, Math.ceil((options.timeoutMs ?? 10_000) / 1000));
    this.#logger = options.logger;
    this.#clock = options.clock ?? systemClock;
  }

  async authorizationUrl(login: IdpLoginState, callbackUrl: string): Promise<URL> {
    const configuration = await this.#configuration();
    const parameters: Record<string, string> = {
      ...this.#settings.presetParams,
      ...this.#settings.operatorParams,
      redirect_uri: callbackUrl,
      response_type: 'code',
      scope: this.#settings.scopes.join(' '),
      state: login.state,
      nonce: login.nonce,
      // S256 even when discovery omits code_challenge_methods_supported (Entra does, and supports it).
      code_challenge: await client.calculatePKCECodeChallenge(login.codeVerifier),
      code_challenge_method: 'S256',
    };
    return client.buildAuthorizationUrl(configuration, parameters);
  }

  async completeLogin(callbackUrl: URL, login: IdpLoginState, expectedCallbackUrl: string): Promise<IdpLoginResult> {
    const configuration = await this.#configuration();
    const tokens = await this.#exchangeCode(configuration, callbackUrl, login, expectedCallbackUrl);
    const idClaims = tokens.claims();
    if (!idClaims) throw new IdpLoginError('server_error', 'The identity provider returned no ID token.', 'token response without id_token');
    const idpTokens = tokensFrom(tokens, this.#clock);

    // The preset's own rule (tenant, Workspace domain) on the verified ID token, before anything else.
    const refusal = this.#settings.checkClaims?.(idClaims);
    if (refusal) throw new IdpLoginError('access_denied', 'The identity provider account may not sign in here.', refusal.reason);

    const claims = await this.#withUserinfo(configuration, tokens.access_token, idClaims);
    const identity = this.#identityFrom(claims, idClaims);
    if (typeof idClaims.tid === 'string') identity.tenantId = idClaims.tid;
    const resolved = await this.#settings.resolveGroups?.(claims, idpTokens, {
      fetch: this.#fetch ?? fetch,
      warn: (fields, message) => this.#logger?.warn({ provider: this.id, ...fields }, message),
    });
    if (resolved) identity.groups = [...new Set([...identity.groups, ...resolved])];
    return { identity, tokens: idpTokens };
  }

  /** The code exchange with the gateway's own PKCE verifier, state and nonce checked by openid-client. */
  async #exchangeCode(configuration: client.Configuration, callbackUrl: URL, login: IdpLoginState, expectedCallbackUrl: string) {
    // openid-client takes the redirect_uri for the token request from the URL it is given. Behind a
    // proxy the URL the gateway saw may differ from the one the IdP was told, so rebuild it from the
    // configured callback plus the response parameters.
    const response = new URL(expectedCallbackUrl);
    response.search = callbackUrl.search;
    response.hash = '';
    try {
      return await client.authorizationCodeGrant(configuration, response, {
        pkceCodeVerifier: login.codeVerifier,
        expectedState: login.state,
        expectedNonce: login.nonce,
        idTokenExpected: true,
      });
    } catch (error) {
      throw toLoginError(error, 'code exchange');
    }
  }

  /** The ID token's claims, with the userinfo response over them when the preset reads it. */
  async #withUserinfo(configuration: client.Configuration, accessToken: string | undefined, idClaims: client.IDToken): Promise<Record<string, unknown>> {
    if (!this.#settings.useUserinfo || !configuration.serverMetadata().userinfo_endpoint || !accessToken) return { ...idClaims };
    try {
      // fetchUserInfo refuses a response whose `sub` differs from the ID token's (OIDC Core §5.3.2).
      const userinfo = await client.fetchUserInfo(configuration, accessToken, idClaims.sub);
      // Userinfo may be more current than the ID token (OIDC Core §5.3.2); the preset's own rule
      // (checkClaims) has already looked at the ID token alone.
      return { ...idClaims, ...userinfo };
    } catch (error) {
      throw toLoginError(error, 'userinfo');
    }
  }

  /** The identity by the claim mapping; the stable id comes from the ID token when it has the claim. */
  #identityFrom(claims: Record<string, unknown>, idClaims: client.IDToken): IdpIdentity {
    const subjectClaim = this.#settings.claims.subject;
    try {
      // The ID token is the statement this login verified, so its subject wins over userinfo's.
      return identityFromClaims({ ...claims, [subjectClaim]: idClaims[subjectClaim] ?? claims[subjectClaim] }, this.#settings.claims);
    } catch (error) {
      if (!(error instanceof MissingSubjectClaim)) throw error;
      throw new IdpLoginError(
        'server_error',
        'The identity provider did not say who the user is.',
        `${error.message} (claims.subject of provider "${this.id}")`,
      );
    }
  }

  /**
   * A refresh-token grant (RFC 6749 §6). `invalid_grant` (revoked, expired, rotated away) means the user
   * must sign in again: access_denied; an IdP that cannot be reached: temporarily_unavailable.
   */
  async refresh(tokens: IdpTokens): Promise<IdpTokens> {
    if (!tokens.refreshToken) throw new IdpLoginError('access_denied', 'No refresh token.', 'no refresh token stored');
    const configuration = await this.#configuration();
    let response: Awaited<ReturnType<typeof client.refreshTokenGrant>>;
    try {
      response = await client.refreshTokenGrant(configuration, tokens.refreshToken, this.#settings.refreshParams);
    } catch (error) {
      throw toLoginError(error, 'refresh');
    }
    const refreshed = tokensFrom(response, this.#clock);
    // OIDC Core §12.2: a refreshed ID token must be about the same user.
    const newClaims = response.claims();
    const oldSubject = tokens.idToken ? unverifiedClaims(tokens.idToken)?.sub : undefined;
    if (newClaims && oldSubject !== undefined && newClaims.sub !== oldSubject) {
      throw new IdpLoginError('access_denied', 'The identity provider answered for another user.', 'refreshed ID token has another sub');
    }
    return refreshed;
  }

  /** Readiness (src/http/health.ts): discovery has been loaded once; triggers it when it has not. */
  async ready(): Promise<void> {
    await this.#configuration();
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
    const discoveryUrl = this.#settings.entraAuthority ? this.#entraDiscovery(options) : this.#issuer;
    if (!this.#settings.entraAuthority && this.#fetch) options[client.customFetch] = this.#fetch as client.CustomFetch;
    // Only a loopback issuer gets here over http (checked in the constructor): local development.
    if (this.#issuer.protocol === 'http:') options.execute = [client.allowInsecureRequests];
    try {
      // The client authentication is chosen per request from the metadata (see #clientAuthentication), so
      // the Configuration discovery builds is used as it is: rebuilding it from serverMetadata() would
      // lose what discovery attached to it (the Entra issuer template).
      return await client.discovery(discoveryUrl, this.#settings.clientId, this.#clientMetadata(), this.#clientAuthentication(), options);
    } catch (error) {
      const detail = `discovery of ${this.#settings.issuer} failed: ${describe(error)}`;
      throw new IdpLoginError('temporarily_unavailable', 'The identity provider could not be reached.', detail, { cause: error });
    }
  }

  /**
   * Entra's multi-tenant (`common`/`organizations`) discovery names the issuer as the template
   * `https://login.microsoftonline.com/{tenantid}/v2.0`; each ID token's `iss` carries the user's own
   * tenant. openid-client checks such tokens against the template with the token's `tid`, but only for
   * a discovery URL on login.microsoftonline.com. For another sign-in host (a national cloud, a test
   * stand-in) the gateway names that URL to openid-client and its fetch goes to the real host; the
   * endpoints in the document (token, keys, userinfo) are used as the host publishes them.
   */
  #entraDiscovery(options: client.DiscoveryRequestOptions): URL {
    const authority = this.#issuer; // the configured host, with `/<tenant>/v2.0`
    const presented = new URL(`${authority.pathname}${authority.search}`, ENTRA_ORIGIN);
    const outbound = this.#fetch ?? fetch;
    options[client.customFetch] = ((url: string, init: RequestInit) => {
      const target = new URL(url);
      if (target.origin === ENTRA_ORIGIN && authority.origin !== ENTRA_ORIGIN) {
        const real = new URL(`${target.pathname}${target.search}`, authority.origin);
        return outbound(real, init);
      }
      return outbound(target, init);
    }) as client.CustomFetch;
    // The template check applies to every later request of this Configuration too, not only discovery.
    return presented;
  }

  #clientMetadata(): Partial<client.ClientMetadata> {
    const metadata: Partial<client.ClientMetadata> = {};
    if (this.#settings.clientSecret) metadata.client_secret = this.#settings.clientSecret;
    metadata[client.clockTolerance] = this.#settings.clockTolerance;
    return metadata;
  }

  /**
   * The confidential client's authentication: the first of client_secret_basic / client_secret_post in
   * the IdP's list (RFC 8414 §2: absent means client_secret_basic). Without a secret, a public client.
   * Chosen at request time from the metadata the request is made with.
   */
  #clientAuthentication(): client.ClientAuth {
    const secret = this.#settings.clientSecret;
    if (!secret) return client.None();
    const basic = client.ClientSecretBasic(secret);
    const post = client.ClientSecretPost(secret);
    return (as, clientMetadata, body, headers) => {
      const supported = as.token_endpoint_auth_methods_supported ?? ['client_secret_basic'];
      const method = supported.find((m) => m === 'client_secret_basic' || m === 'client_secret_post');
      if (method === 'client_secret_post') return post(as, clientMetadata, body, headers);
      if (method === 'client_secret_basic') return basic(as, clientMetadata, body, headers);
      throw new IdpLoginError(
        'server_error',
        'The identity provider does not accept the configured client credentials.',
        `token_endpoint_auth_methods_supported (${supported.join(', ')}) has neither client_secret_basic nor client_secret_post`,
      );
    };
  }
}

/** The payload of a JWT the gateway itself stored after verifying it; never used to decide trust. */
function unverifiedClaims(jwt: string): Record<string, unknown> | undefined {
  try {
    const payload = JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as unknown;
    return payload instanceof Object ? (payload as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function tokensFrom(response: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers, clock: Clock): IdpTokens {
  const tokens: IdpTokens = {};
  if (response.access_token) tokens.accessToken = response.access_token;
  if (response.refresh_token) tokens.refreshToken = response.refresh_token;
  if (response.id_token) tokens.idToken = response.id_token;
  const expiresIn = response.expiresIn();
  if (expiresIn !== undefined) tokens.expiresAt = epochSeconds(clock) + expiresIn;
  if (response.scope) tokens.scope = response.scope;
  return tokens;
}

/**
 * Maps whatever openid-client (or the network) threw into the three outcomes the MCP client may learn.
 * What exactly failed goes into `detail`, for the logs only.
 */
function toLoginError(error: unknown, step: 'code exchange' | 'userinfo' | 'refresh'): IdpLoginError {
  if (error instanceof IdpLoginError) return error;
  if (error instanceof client.ClientError && error.cause instanceof IdpLoginError) return error.cause;
  const options = { cause: error };
  const endpoint = step === 'userinfo' ? 'userinfo endpoint' : 'token endpoint';
  if (error instanceof client.AuthorizationResponseError) {
    const detail = `IdP callback error=${error.error}${error.error_description ? ` (${error.error_description})` : ''}`;
    if (DENIAL_ERRORS.has(error.error)) return new IdpLoginError('access_denied', 'The identity provider denied the sign-in.', detail, options);
    if (error.error === 'temporarily_unavailable' || error.error === 'server_error') {
      return new IdpLoginError('temporarily_unavailable', 'The identity provider is unavailable.', detail, options);
    }
    return new IdpLoginError('server_error', 'The identity provider refused the sign-in request.', detail, options);
  }
  if (error instanceof client.ResponseBodyError) {
    const detail = `${endpoint} answered ${error.status} error=${error.error}${error.error_description ? ` (${error.error_description})` : ''}`;
    if (error.status >= 500 || error.status === 429) return unavailable(detail, options);
    // RFC 6749 §5.2: the refresh token is expired, revoked or was rotated away; the user signs in again.
    if (step === 'refresh' && error.error === 'invalid_grant') {
      return new IdpLoginError('access_denied', 'The identity provider no longer accepts this sign-in.', detail, options);
    }
    return new IdpLoginError('server_error', 'The identity provider refused the sign-in.', detail, options);
  }
  if (error instanceof client.ClientError) {
    const status = responseStatus(error.cause);
    if (status !== undefined && (status >= 500 || status === 429)) return unavailable(`${endpoint} answered ${status}`, options);
    if (error.code === 'OAUTH_TIMEOUT' || error.code === 'OAUTH_ABORT') return unavailable(`${endpoint} request timed out`, options);
    return new IdpLoginError('server_error', "The identity provider's answer could not be verified.", `${step}: ${describe(error)}`, options);
  }
  // fetch() rejects with a TypeError for connection refused/reset, DNS and TLS failures.
  if (error instanceof TypeError) return unavailable(`${endpoint} request failed: ${describe(error)}`, options);
  return new IdpLoginError('server_error', 'The sign-in could not be completed.', `${step}: ${describe(error)}`, options);
}

function unavailable(detail: string, options: ErrorOptions): IdpLoginError {
  return new IdpLoginError('temporarily_unavailable', 'The identity provider is unavailable.', detail, options);
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

/** What an operator reads for each ID token check oauth4webapi names. */
const CHECK_NAMES: Record<string, string> = {
  iss: 'issuer',
  issuer: 'issuer (discovery document)',
  aud: 'audience (the client id)',
  azp: 'authorized party',
  exp: 'expiry (or clock skew beyond clockTolerance)',
  iat: 'issued-at (or clock skew beyond clockTolerance)',
  nbf: 'not-before (or clock skew beyond clockTolerance)',
  nonce: 'nonce',
  sub: 'subject',
  auth_time: 'authentication time',
};

/**
 * Names the failed check, the claim, and the expected and received values for public ones (never a
 * nonce or state). For `iss`, Entra multi-tenant included, the received value names the tenant.
 */
function checkOf(value: unknown): string | undefined {
  if (!(value instanceof Object)) return undefined;
  const record = value as Record<string, unknown>;
  const name = record.claim ?? record.attribute;
  if (typeof name !== 'string') return undefined;
  const parts = [`check: ${CHECK_NAMES[name] ?? name}, claim ${name}`];
  const expected = record.expected;
  if (expected !== undefined && ['iss', 'aud', 'azp', 'issuer'].includes(name)) parts.push(`expected ${JSON.stringify(expected)}`);
  const claims = record.claims;
  if (claims instanceof Object && ['iss', 'aud', 'azp', 'exp', 'iat', 'nbf'].includes(name)) {
    parts.push(`got ${JSON.stringify((claims as Record<string, unknown>)[name])}`);
  }
  if (typeof record.now === 'number') parts.push(`gateway clock ${record.now}`);
  if (typeof record.tolerance === 'number') parts.push(`tolerance ${record.tolerance}s`);
  return `(${parts.join(', ')})`;
}
