/**
 * The authorization server: oidc-provider configured as an MCP-compliant OAuth 2.1 server. Nothing
 * outside `authorization/` imports oidc-provider; this file is where its behaviour is decided.
 */
import Provider, { errors, interactionPolicy, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import type { JWK } from 'jose';
import type { Storage } from '../storage/types.ts';
import type { UserRecord } from '../storage/records.ts';
import { NS } from '../storage/records.ts';
import type { Logger } from '../observability/logger.ts';
import type { IdpIdentity } from '../idp/types.ts';
import { evaluateAccess } from '../policy/access.ts';
import { createAdapterFactory } from './adapter.ts';
import { redirectUriMatches } from './redirect-uris.ts';
import { hostAllowed } from './cimd.ts';
import type { AccessPolicy } from '../policy/access.ts';
import { ErrorCode, GatewayError } from '../core/errors.ts';

/** An MCP server as the authorization server sees it: an audience with scopes. */
export interface ProtectedResource {
  name: string;
  /** Canonical resource URI, also the token `aud`. */
  resource: string;
  scopes: string[];
  /** Who may log in to it: the gateway-wide and the server's rule blocks (src/policy/access.ts). Absent: everyone. */
  access?: AccessPolicy;
  /** The server receives the user's IdP token (`servers[].idpToken`): without a live one, refreshing is pointless. */
  requiresIdpToken?: boolean;
}

export interface ProviderOptions {
  issuer: string;
  resources: ProtectedResource[];
  canonicalizeResource: (value: string) => string | undefined;
  storage: Storage;
  signingKeys: JWK[];
  cookieKeys: string[];
  /** `trustProxy` as configured (src/config/schema-trust-proxy.ts). */
  trustProxy: boolean | number | string[];
  tokens: { accessTokenTtl: number; refreshTokenTtl: number; authorizationCodeTtl: number };
  registration: { enabled: boolean; unusedClientTtl: number; idleClientTtl: number };
  cimd: { enabled: boolean; allowHosts: string[]; denyHosts: string[]; maxBytes: number; fetch: (url: string | URL, init: object) => Promise<Response> };
  renderError: (ctx: KoaContextWithOIDC, out: { error: string; error_description?: string }, error: Error) => void;
  logger: Logger;
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
 * The MCP server a `resource` parameter names (RFC 8707 §2), compared in canonical form. No parameter
 * means the default (first) server. Several values mean undefined: a token is for one MCP server, and
 * the consent page must name exactly the server the token will be for.
 */
export function resolveResource(
  resources: readonly ProtectedResource[],
  canonicalizeResource: (value: string) => string | undefined,
  indicator: unknown,
): ProtectedResource | undefined {
  if (indicator === undefined || indicator === null) return resources[0];
  if (typeof indicator !== 'string') return undefined;
  const canonical = canonicalizeResource(indicator);
  return canonical === undefined ? undefined : resources.find((candidate) => candidate.resource === canonical);
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

export function createProvider(options: ProviderOptions): Provider {
  /** The MCP servers a refresh is for: the refresh token's resource, the request's, or the default. */
  async function refreshTargets(ctx: KoaContextWithOIDC, token: { grantId?: string; resource?: unknown }): Promise<ProtectedResource[]> {
    // A grant with no resource scopes records no resource, so the token and the request are read too.
    const grant = token.grantId ? await ctx.oidc.provider.Grant.find(token.grantId) : undefined;
    const indicators = [token.resource, ctx.oidc.params?.resource, Object.keys(grant?.resources ?? {})].flat().filter((value): value is string => typeof value === 'string');
    if (indicators.length === 0) return [resources[0] as ProtectedResource];
    return indicators.map((indicator) => resolveResource(options.resources, options.canonicalizeResource, indicator)).filter((server) => server !== undefined);
  }

  /**
   * Whether a refresh may still issue tokens to this user. `false` becomes `invalid_grant`, which sends
   * the client through a full authorization (consent, IdP login, the rules again):
   * - the access rules are evaluated again against what the user's last login recorded, so tightening
   *   a rule takes effect within one access-token lifetime rather than at the refresh token's expiry;
   * - a server that receives the user's IdP token needs a live IdP session: once the IdP refused its
   *   refresh token (src/idp/idp-tokens.ts dropped the tokens), a new access token would only meet
   *   a 401 at the gateway, and clients such as the SDK then give up instead of logging in again.
   */
  async function refreshAllowed(ctx: KoaContextWithOIDC, user: UserRecord, token: { grantId?: string; resource?: unknown }): Promise<boolean> {
    const servers = await refreshTargets(ctx, token);
    for (const server of servers) {
      if (!server.access) continue;
      const decision = evaluateAccess(identityOf(user), user.provider, server.access);
      if (!decision.allowed) {
        options.logger.info({ event: 'refresh.denied', userId: user.id, server: server.name, clientId: ctx.oidc.client?.clientId, reason: decision.reason }, 'access rules no longer admit the user; refresh refused');
        return false;
      }
    }
    if (servers.some((server) => server.requiresIdpToken) && (await storage.get(NS.idpTokens, user.id)) === undefined) {
      options.logger.info({ event: 'refresh.denied', userId: user.id, clientId: ctx.oidc.client?.clientId, reason: 'the IdP session is over' }, 'IdP session over; refresh refused');
      return false;
    }
    return true;
  }

  const { issuer, resources, tokens, storage } = options;
  const defaultResource = resources[0];
  if (!defaultResource) throw new GatewayError(ErrorCode.AUTHORIZATION_SETUP, 'at least one MCP server is required');

  const configuration: Configuration = {
    adapter: createAdapterFactory(storage, options.registration),
    jwks: { keys: options.signingKeys as never },
    cookies: {
      keys: options.cookieKeys,
      // oidc-provider's own interaction/session cookies; SameSite=Lax so the IdP's top-level redirect
      // back to us carries them.
      long: { signed: true, httpOnly: true, sameSite: 'lax' },
      short: { signed: true, httpOnly: true, sameSite: 'lax' },
      names: { session: '_mcpgw_session', interaction: '_mcpgw_interaction', resume: '_mcpgw_resume' },
    },
    routes: {
      authorization: '/authorize',
      token: '/token',
      registration: '/register',
      revocation: '/revoke',
      jwks: '/jwks',
      end_session: '/session/end',
      userinfo: '/userinfo',
      introspection: '/introspect',
    },
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
    async findAccount(ctx, sub, token) {
      const user = await storage.get<UserRecord>(NS.users, sub);
      if (!user) return undefined;
      if (token?.kind === 'RefreshToken' && !(await refreshAllowed(ctx, user, token))) return undefined;
      return {
        accountId: sub,
        async claims() {
          return { sub, email: user.email, email_verified: user.emailVerified, name: user.name };
        },
      };
    },
    features: {
      devInteractions: { enabled: false },
      userinfo: { enabled: false },
      introspection: { enabled: false },
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
        async allowFetch(_ctx, clientId) {
          const host = URL.parse(clientId)?.hostname;
          return host !== undefined && hostAllowed(host, options.cimd);
        },
        cacheDuration: { min: 60, max: 86400 },
      },
      resourceIndicators: {
        enabled: true,
        // Clients that omit `resource` still get a JWT for the default server, never an opaque token.
        async defaultResource() {
          return defaultResource.resource;
        },
        async useGrantedResource() {
          return true;
        },
        async getResourceServerInfo(_ctx, indicator) {
          const target = resolveResource(options.resources, options.canonicalizeResource, indicator);
          if (!target) throw new errors.InvalidTarget('the resource is not an MCP server behind this gateway');
          return {
            // RFC 8707 §2: audience-bound to exactly this server.
            audience: target.resource,
            scope: target.scopes.join(' '),
            accessTokenTTL: tokens.accessTokenTtl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
      rpInitiatedLogout: { enabled: false },
      // The resource server accepts Bearer tokens only; DPoP-bound tokens would be refused there, so
      // the authorization server must not issue them. PAR is not routed (no MCP client uses it yet).
      dPoP: { enabled: false },
      pushedAuthorizationRequests: { enabled: false },
    } as Configuration['features'],
    fetch: options.cimd.fetch as never,
    fetchResponseBodyLimits: { 'client_id metadata document': options.cimd.maxBytes } as never,
    interactions: {
      policy: interactionPolicyAlwaysLogin(),
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
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
    ttl: {
      AccessToken: tokens.accessTokenTtl,
      AuthorizationCode: tokens.authorizationCodeTtl,
      RefreshToken: tokens.refreshTokenTtl,
      Grant: tokens.refreshTokenTtl,
      Interaction: 600,
      Session: 600,
      IdToken: 3600,
    },
    allowOmittingSingleRegisteredRedirectUri: false,
    acceptQueryParamAccessTokens: false,
    conformIdTokenClaims: true,
    clockTolerance: 5,
    // CORS for browser-based clients (MCP Inspector): any origin may call the token and revocation
    // endpoints. No cookies are involved there, and the client is authenticated by its own means.
    clientBasedCORS: () => true,
    renderError: async (ctx, out, error) => options.renderError(ctx, out, error),
    discovery: {
      service_documentation: undefined,
    },
  };

  const provider = new Provider(issuer, configuration);
  // Koa's flag is all or nothing; it only lets X-Forwarded-Proto/Host shape URLs the provider builds,
  // and the issuer is fixed, so any trusted proxy turns it on. Client addresses go through the resolver.
  provider.proxy = options.trustProxy !== false && options.trustProxy !== 0;

  // Loopback redirect URIs match on any port for every client, not only `native` ones (RFC 8252 §7.3).
  provider.Client.prototype.redirectUriAllowed = function redirectUriAllowed(this: { redirectUris?: string[] }, value: string) {
    return redirectUriMatches(value, this.redirectUris ?? []);
  };

  auditProviderEvents(provider, options.logger);
  return provider;
}

/**
 * Every decision the authorization server takes lands in the log as an audit event: tokens issued,
 * token requests refused (with oidc-provider's reason, which never goes on the wire), registrations,
 * revocations, and grants revoked after refresh-token reuse.
 */
function auditProviderEvents(provider: Provider, logger: Logger): void {
  const clientOf = (ctx: KoaContextWithOIDC) => ctx.oidc?.client?.clientId;
  provider.on('grant.success', (ctx) => {
    logger.info({ event: 'token.issued', clientId: clientOf(ctx), grantType: ctx.oidc.params?.grant_type, user: ctx.oidc.entities.Grant?.accountId }, 'tokens issued');
  });
  provider.on('grant.error', (ctx, error) => {
    logger.warn({ event: 'token.refused', clientId: clientOf(ctx), grantType: ctx.oidc?.params?.grant_type, error: (error as { error?: string }).error, detail: (error as { error_detail?: string }).error_detail }, 'token request refused');
  });
  provider.on('authorization.error', (ctx, error) => {
    logger.warn({ event: 'authorization.refused', clientId: clientOf(ctx), error: (error as { error?: string }).error, detail: (error as { error_detail?: string }).error_detail }, 'authorization request refused');
  });
  provider.on('registration_create.success', (_ctx, client) => {
    logger.info({ event: 'client.registered', clientId: client.clientId, clientName: client.clientName, redirectUris: client.redirectUris }, 'client registered');
  });
  provider.on('registration_create.error', (_ctx, error) => {
    logger.warn({ event: 'client.registration_refused', error: (error as { error?: string }).error, detail: (error as Error).message }, 'client registration refused');
  });
  provider.on('revocation.error', (ctx, error) => {
    logger.warn({ event: 'revocation.refused', clientId: clientOf(ctx), error: (error as { error?: string }).error }, 'revocation request refused');
  });
  provider.on('grant.revoked', (_ctx, grantId) => logger.info({ event: 'grant.revoked', grantId }, 'grant revoked'));
  provider.on('server_error', (_ctx, error) => logger.error({ err: error }, 'authorization server error'));
}

/** The identity a user's last login recorded, as the access rules read it. */
function identityOf(user: UserRecord): IdpIdentity {
  return {
    subject: user.subject,
    email: user.email,
    emailVerified: user.emailVerified,
    name: user.name,
    groups: user.groups,
    tenantId: user.tenantId,
    organizations: user.organizations,
    teams: user.teams,
  };
}
