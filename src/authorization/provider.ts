/**
 * The authorization server: oidc-provider configured as an MCP-compliant OAuth 2.1 server. Nothing
 * outside `authorization/` imports oidc-provider; this file is where its behaviour is decided.
 */

import type { JWK } from 'jose';
import Provider, { type Configuration, errors, interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';
import { type Clock, systemClock } from '../core/clock.ts';
import { ErrorCode, GatewayError } from '../core/errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { UserRecord } from '../storage/records.ts';
import { NS } from '../storage/records.ts';
import type { SecretBox } from '../storage/secret-box.ts';
import type { Storage } from '../storage/types.ts';
import {
  type AccessTokenServices,
  answerForAccessTokens,
  grantIdClaim,
  introspectionSettings,
  standaloneAccessTokenOptions,
} from './access-token-endpoints.ts';
import { createAdapterFactory } from './adapter.ts';
import { hostAllowed } from './cimd.ts';
import { cachePublicDocuments } from './document-caching.ts';
import { pinToPublicOrigin } from './public-origin.ts';
import { redirectUriMatches } from './redirect-uris.ts';
import { createRefreshPolicy } from './refresh-policy.ts';
import { ConcurrentRefresh, createRefreshReplay, type RefreshReplay } from './refresh-replay.ts';
import { type ProtectedResource, resolveResource } from './resources.ts';
import { revokedGrantGuard } from './revoked-grants.ts';
import { retryAfterOnUnavailable, storageForProvider } from './storage-outage.ts';
import { omitEmptyScope } from './token-response.ts';

export { type ProtectedResource, resolveResource } from './resources.ts';

export interface ProviderOptions {
  issuer: string;
  resources: ProtectedResource[];
  canonicalizeResource: (value: string) => string | undefined;
  storage: Storage;
  /**
   * Seals what the adapter must be able to read back but a copy of the store must not (client secrets),
   * and the refresh responses kept for the reuse grace period (src/authorization/refresh-replay.ts).
   */
  secretBox: SecretBox;
  signingKeys: JWK[];
  cookieKeys: string[];
  /** `refreshReuseGraceSeconds` absent or 0: every reuse of a rotated refresh token revokes its grant. */
  tokens: { accessTokenTtl: number; refreshTokenTtl: number; authorizationCodeTtl: number; refreshReuseGraceSeconds?: number };
  /** Times the grace period (the system clock by default). */
  clock?: Clock;
  registration: { enabled: boolean; unusedClientTtl: number; idleClientTtl: number };
  cimd: {
    enabled: boolean;
    allowHosts: string[];
    denyHosts: string[];
    maxBytes: number;
    fetch: (url: string | URL, init: object) => Promise<Response>;
    /** Whether to fetch a document now (cimd-gate.ts); by default, whether its host is allowed. */
    allowFetch?: (ctx: KoaContextWithOIDC | undefined, clientId: string) => Promise<boolean>;
  };
  renderError: (ctx: KoaContextWithOIDC, out: { error: string; error_description?: string }, error: Error) => void;
  logger: Logger;
  /** Grant revocation, the revocation list, and who may introspect (access-token-endpoints.ts). */
  accessTokens?: AccessTokenServices;
}

/** OIDC scopes the facade understands besides the MCP servers' own scopes. */
export const OIDC_SCOPES = ['openid', 'offline_access', 'profile', 'email'];

/**
 * Scopes a client may list in its registered `scope` metadata. Only OIDC scopes: oidc-provider treats
 * every scope in its `scopes` list as an OpenID scope needing consent of its own, while an MCP server's
 * scopes are resource scopes that come from `getResourceServerInfo` (RFC 8707 §2.2).
 */
export function registrableScopes(): Set<string> {
  return new Set(OIDC_SCOPES);
}

/**
 * Every authorization goes through the gateway's consent and an upstream login, even when the browser
 * still has a session here: consent is per client (confused-deputy rule), and the IdP decides whether
 * the person may still sign in. oidc-provider would otherwise skip the interaction for a known session.
 */
function interactionPolicyAlwaysLogin() {
  const policy = interactionPolicy.base();
  const login = policy.get('login');
  if (!login) throw new GatewayError(ErrorCode.AUTHORIZATION_SETUP, 'oidc-provider has no login prompt');
  login.checks.add(
    new interactionPolicy.Check('gateway_consent_required', 'The user must approve this client and sign in', (ctx) =>
      ctx.oidc.result?.login ? interactionPolicy.Check.NO_NEED_TO_PROMPT : interactionPolicy.Check.REQUEST_PROMPT,
    ),
  );
  return policy;
}

export function createProvider(providerOptions: ProviderOptions): Provider {
  // Storage outages reach clients as temporarily_unavailable (503), not server_error (storage-outage.ts).
  const withOutageMapping = { ...providerOptions, storage: storageForProvider(providerOptions.storage) };
  const options: WithAccessTokens = { ...withOutageMapping, accessTokens: providerOptions.accessTokens ?? standaloneAccessTokens(withOutageMapping) };
  const defaultResource = options.resources[0];
  if (!defaultResource) throw new GatewayError(ErrorCode.AUTHORIZATION_SETUP, 'at least one MCP server is required');
  const graceSeconds = options.tokens.refreshReuseGraceSeconds ?? 0;
  const refreshReplay = createRefreshReplay({
    storage: options.storage,
    secretBox: options.secretBox,
    clock: options.clock ?? systemClock,
    logger: options.logger,
    graceSeconds,
  });
  const configuration: Configuration = {
    adapter: createAdapterFactory(options.storage, options.registration, options.secretBox, options.accessTokens.grants.grantRevoked),
    clients: introspectionSettings(options.accessTokens.introspectionClients).staticClients,
    extraTokenClaims: grantIdClaim,
    jwks: { keys: options.signingKeys as never },
    cookies: cookieSettings(options.cookieKeys),
    routes: PROVIDER_ROUTES,
    ...protocolSettings(),
    findAccount: accountFinder(options, refreshReplay),
    features: featureSettings(options, defaultResource),
    fetch: options.cimd.fetch as never,
    fetchResponseBodyLimits: { 'client_id metadata document': options.cimd.maxBytes } as never,
    interactions: {
      policy: interactionPolicyAlwaysLogin(),
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    ...grantSettings(),
    ttl: tokenLifetimes(options.tokens),
    renderError: async (ctx, out, error) => options.renderError(ctx, out, error),
  };

  const provider = new Provider(options.issuer, configuration);
  // Every URL it builds from a request starts with the issuer, never with Host or X-Forwarded-* (public-origin.ts),
  // so its metadata and keys may be cached by anyone (document-caching.ts).
  pinToPublicOrigin(provider, options.issuer);
  cachePublicDocuments(provider, { metadata: '/.well-known/openid-configuration', jwks: PROVIDER_ROUTES?.jwks ?? '/jwks' });

  // Loopback redirect URIs match on any port for every client, not only `native` ones (RFC 8252 §7.3).
  provider.Client.prototype.redirectUriAllowed = function redirectUriAllowed(this: { redirectUris?: string[] }, value: string) {
    return redirectUriMatches(value, this.redirectUris ?? []);
  };

  // Around the token endpoint, outermost first: refresh replay within the grace period, then no
  // token for a grant revoked meanwhile (docs/tokens.md), then no empty `scope` (token-response.ts).
  provider.use(refreshReplay.middleware as Parameters<Provider['use']>[0]);
  provider.use(revokedGrantGuard(options.storage, options.logger) as Parameters<Provider['use']>[0]);
  provider.use(omitEmptyScope as Parameters<Provider['use']>[0]);

  auditProviderEvents(provider, options.logger);
  answerForAccessTokens(provider, {
    ...options.accessTokens,
    issuer: options.issuer,
    storage: options.storage,
    logger: options.logger,
    clockToleranceSeconds: PROVIDER_CLOCK_TOLERANCE,
  });
  retryAfterOnUnavailable(provider);
  return provider;
}

type WithAccessTokens = ProviderOptions & { accessTokens: AccessTokenServices };

function standaloneAccessTokens(options: ProviderOptions): AccessTokenServices {
  return standaloneAccessTokenOptions(
    options.storage,
    options.secretBox,
    options.tokens.accessTokenTtl,
    options.registration,
    options.signingKeys,
    options.logger,
  );
}

/**
 * Where oidc-provider mounts its endpoints. The gateway's route table (src/http/routes.ts) lists each
 * of them, and a test holds the two together.
 */
const PROVIDER_ROUTES: Configuration['routes'] = {
  authorization: '/authorize',
  token: '/token',
  registration: '/register',
  revocation: '/revoke',
  jwks: '/jwks',
  end_session: '/session/end',
  userinfo: '/userinfo',
  introspection: '/introspect',
};

/** oidc-provider's own interaction/session cookies. */
function cookieSettings(keys: string[]): Configuration['cookies'] {
  return {
    keys,
    // SameSite=Lax so the IdP's top-level redirect back to us carries them.
    long: { signed: true, httpOnly: true, sameSite: 'lax' },
    short: { signed: true, httpOnly: true, sameSite: 'lax' },
    names: { session: '_mcpgw_session', interaction: '_mcpgw_interaction', resume: '_mcpgw_resume' },
  };
}

/** Seconds of clock skew tolerated on the tokens the server checks (the resource server tolerates as much). */
const PROVIDER_CLOCK_TOLERANCE = 5;

/** What the server speaks: code flow with PKCE S256, ES256, the client authentication methods. */
function protocolSettings(): Partial<Configuration> {
  return {
    responseTypes: ['code'],
    // OAuth 2.1 §4.1.1 and RFC 9700 §2.1.1: PKCE for every client, S256 only (plain is not offered).
    pkce: { required: () => true },
    scopes: OIDC_SCOPES,
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    // Public clients first: some MCP clients pick the first listed method.
    clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post'],
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      id_token_signed_response_alg: 'ES256',
      token_endpoint_auth_method: 'client_secret_basic',
    },
    enabledJWA: { idTokenSigningAlgValues: ['ES256'], userinfoSigningAlgValues: ['ES256'] } as Configuration['enabledJWA'],
    allowOmittingSingleRegisteredRedirectUri: false,
    acceptQueryParamAccessTokens: false,
    conformIdTokenClaims: true,
    clockTolerance: PROVIDER_CLOCK_TOLERANCE,
    // CORS for browser-based clients (MCP Inspector): any origin may call the token and revocation
    // endpoints. No cookies are involved there, and the client is authenticated by its own means.
    clientBasedCORS: () => true,
    discovery: { service_documentation: undefined },
  };
}

/**
 * The account behind a token. For a refresh token, undefined (oidc-provider answers `invalid_grant`)
 * when the user may no longer have tokens (src/authorization/refresh-policy.ts); then, before
 * oidc-provider's reuse detection, the single-flight of concurrent presentations of one refresh token
 * (src/authorization/refresh-replay.ts).
 */
function accountFinder(options: WithAccessTokens, refreshReplay: RefreshReplay): Configuration['findAccount'] {
  const refreshAllowed = createRefreshPolicy({ ...options, grants: options.accessTokens.grants });
  return async (ctx, sub, token) => {
    const user = await options.storage.get<UserRecord>(NS.users, sub);
    if (!user) return undefined;
    if (token?.kind === 'RefreshToken') {
      if (!(await refreshAllowed(ctx, user, token))) return undefined;
      await refreshReplay.beforeRotation(ctx, token);
    }
    return {
      accountId: sub,
      async claims() {
        return { sub, email: user.email, email_verified: user.emailVerified, name: user.name };
      },
    };
  };
}

function featureSettings(options: WithAccessTokens, defaultResource: ProtectedResource): Configuration['features'] {
  return {
    devInteractions: { enabled: false },
    userinfo: { enabled: false },
    introspection: introspectionSettings(options.accessTokens.introspectionClients).feature,
    revocation: {
      enabled: true,
      // RFC 7009 §2.1: a client may revoke only tokens issued to it; anything else is left alone and
      // answered like a successful revocation (no oracle for other clients' tokens).
      allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
    },
    registration: {
      enabled: options.registration.enabled,
      initialAccessToken: false,
      // The registration response never includes anything of the gateway's IdP app.
      issueRegistrationAccessToken: false,
    },
    clientIdMetadataDocument: {
      enabled: options.cimd.enabled,
      ack: 'draft-02',
      async allowFetch(ctx, clientId) {
        if (options.cimd.allowFetch) return options.cimd.allowFetch(ctx, clientId);
        const host = URL.parse(clientId)?.hostname;
        return host !== undefined && hostAllowed(host, options.cimd);
      },
      cacheDuration: { min: 60, max: 86400 },
    },
    resourceIndicators: resourceIndicatorSettings(options, defaultResource),
    rpInitiatedLogout: { enabled: false },
    // The resource server accepts Bearer tokens only; DPoP-bound tokens would be refused there, so
    // the authorization server must not issue them. PAR is not routed (no MCP client uses it yet).
    dPoP: { enabled: false },
    pushedAuthorizationRequests: { enabled: false },
  } as Configuration['features'];
}

/** RFC 8707: every access token is a JWT bound to exactly one MCP server. */
function resourceIndicatorSettings(options: ProviderOptions, defaultResource: ProtectedResource) {
  return {
    enabled: true,
    // Clients that omit `resource` still get a JWT for the default server, never an opaque token.
    async defaultResource() {
      return defaultResource.resource;
    },
    async useGrantedResource() {
      return true;
    },
    async getResourceServerInfo(_ctx: KoaContextWithOIDC, indicator: string) {
      const target = resolveResource(options.resources, options.canonicalizeResource, indicator);
      if (!target) throw new errors.InvalidTarget('the resource is not an MCP server behind this gateway');
      return {
        // RFC 8707 §2: audience-bound to exactly this server.
        audience: target.resource,
        scope: target.scopes.join(' '),
        accessTokenTTL: options.tokens.accessTokenTtl,
        accessTokenFormat: 'jwt' as const,
        jwt: { sign: { alg: 'ES256' as const } },
      };
    },
  };
}

/** Refresh tokens, sessions and grants. */
function grantSettings(): Partial<Configuration> {
  return {
    // Refresh tokens do not require offline_access (MCP clients rarely ask for it); they rotate on
    // every use, and reuse of a rotated one revokes the grant (RFC 9700 §4.14.2).
    async issueRefreshToken(_ctx, client) {
      return client.grantTypeAllowed('refresh_token');
    },
    rotateRefreshToken: true,
    // Tokens outlive the short browser session here: the session only carries one login through.
    async expiresWithSession() {
      return false;
    },
    // Only the grant this very interaction created counts: an earlier grant remembered by the browser
    // session is never reused silently (consent per authorization, see interactionPolicyAlwaysLogin).
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId;
      return grantId ? ctx.oidc.provider.Grant.find(grantId) : undefined;
    },
  };
}

/** Lifetime of ID tokens, in seconds; a retired signing key stays published at least this long (docs/keys.md). */
export const ID_TOKEN_TTL_SECONDS = 3600;

function tokenLifetimes(tokens: ProviderOptions['tokens']): Configuration['ttl'] {
  return {
    AccessToken: tokens.accessTokenTtl,
    AuthorizationCode: tokens.authorizationCodeTtl,
    RefreshToken: tokens.refreshTokenTtl,
    Grant: tokens.refreshTokenTtl,
    Interaction: 600,
    Session: 600,
    IdToken: ID_TOKEN_TTL_SECONDS,
  };
}

/**
 * Every decision the authorization server takes lands in the log as an audit event: tokens issued,
 * token requests refused (with oidc-provider's reason, which never goes on the wire), registrations,
 * revocations, and grants revoked after refresh-token reuse.
 */
function auditProviderEvents(provider: Provider, logger: Logger): void {
  const clientOf = (ctx: KoaContextWithOIDC) => ctx.oidc?.client?.clientId;
  provider.on('grant.success', (ctx) => {
    logger.info(
      {
        event: 'token.issued',
        clientId: clientOf(ctx),
        grantType: ctx.oidc.params?.grant_type,
        user: ctx.oidc.entities.Grant?.accountId,
        // The MCP server the access token is for, and whether the client named it (RFC 8707) or got the default.
        audience: ctx.oidc.entities.AccessToken?.aud,
        requestedResource: ctx.oidc.params?.resource,
      },
      'tokens issued',
    );
  });
  provider.on('grant.error', (ctx, error) => {
    if (error instanceof ConcurrentRefresh) return; // answered, and audited, by refresh-replay.ts
    logger.warn(
      {
        event: 'token.refused',
        clientId: clientOf(ctx),
        grantType: ctx.oidc?.params?.grant_type,
        error: (error as { error?: string }).error,
        detail: (error as { error_detail?: string }).error_detail,
      },
      'token request refused',
    );
  });
  provider.on('authorization.error', (ctx, error) => {
    logger.warn(
      {
        event: 'authorization.refused',
        clientId: clientOf(ctx),
        error: (error as { error?: string }).error,
        detail: (error as { error_detail?: string }).error_detail,
      },
      'authorization request refused',
    );
  });
  provider.on('registration_create.success', (_ctx, client) => {
    logger.info(
      { event: 'client.registered', clientId: client.clientId, clientName: client.clientName, redirectUris: client.redirectUris },
      'client registered',
    );
  });
  provider.on('registration_create.error', (_ctx, error) => {
    logger.warn(
      { event: 'client.registration_refused', error: (error as { error?: string }).error, detail: (error as Error).message },
      'client registration refused',
    );
  });
  provider.on('revocation.error', (ctx, error) => {
    // JWT access tokens are refused by oidc-provider and then revoked by access-token-endpoints.ts.
    if (error instanceof errors.UnsupportedTokenType) return;
    logger.warn({ event: 'revocation.refused', clientId: clientOf(ctx), error: (error as { error?: string }).error }, 'revocation request refused');
  });
  provider.on('grant.revoked', (_ctx, grantId) => logger.info({ event: 'grant.revoked', grantId }, 'grant revoked'));
  provider.on('server_error', (_ctx, error) => logger.error({ err: error }, 'authorization server error'));
}
