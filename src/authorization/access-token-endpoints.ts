/**
 * Revocation (RFC 7009) and introspection (RFC 7662) of the gateway's own JWT access tokens.
 *
 * oidc-provider refuses structured (JWT) tokens at both endpoints with `unsupported_token_type`: it
 * does not store them, so it cannot find them. It does everything before that refusal well (client
 * authentication, parameters, duplicate parameters, CORS), so the gateway lets it run and, when the
 * one refusal was `unsupported_token_type` for a client it has just authenticated, answers in its
 * place: the token is verified as one of ours (ES256 signature with our keys, `iss`, `typ: at+jwt`)
 * and then revoked or introspected. docs/tokens.md, "Revocation" and "Introspection", explain the
 * choices.
 *
 * - Revocation of an access token revokes its grant, refresh token included. RFC 7009 §2.1 allows it
 *   ("MAY revoke the respective refresh token as well"), oidc-provider does the same for the opaque
 *   tokens it stores, and revoking only the one access token would leave the refresh token able to
 *   mint a fresh one at once: a client that revokes a token it believes leaked expects the session over.
 *   A token issued to another client is left alone, answered 200 like a success (RFC 7009 §2.1; no
 *   oracle for other clients' tokens), as are invalid and expired tokens (RFC 7009 §2.2).
 * - Introspection answers only the configured introspection clients (operator-designated resource
 *   servers, `introspection.clients`). Any authenticated MCP client could otherwise learn who holds a
 *   token it picked up, and registration is open to anyone (DCR), so "confidential" proves nothing.
 *   Every other caller gets `{"active": false}` (RFC 7662 §2.2 lets the server answer inactive to a
 *   caller it does not authorise), and so does a revoked, expired, foreign or malformed token.
 */
import type { JWK, JWTPayload } from 'jose';
import { createLocalJWKSet, errors as joseErrors, jwtVerify } from 'jose';
import type Provider from 'oidc-provider';
import { type Configuration, errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from '../observability/logger.ts';
import { NS } from '../storage/records.ts';
import { GRANT_ID_CLAIM, RevocationList, revocationRetentionSeconds } from '../storage/revocation-list.ts';
import type { SecretBox } from '../storage/secret-box.ts';
import type { Storage } from '../storage/types.ts';
import type { AdapterPolicy } from './adapter.ts';
import { createGrantRevoker, type GrantRevoker } from './grant-revocation.ts';

export interface IntrospectionClient {
  clientId: string;
  clientSecret: string;
}

export interface AccessTokenEndpointOptions {
  issuer: string;
  /** The authorization server's current public signing keys. */
  publicKeys: () => JWK[];
  revocations: RevocationList;
  grants: GrantRevoker;
  introspectionClients: readonly IntrospectionClient[];
  storage: Storage;
  /** Seconds of clock skew tolerated on `exp`, as the resource server tolerates it. */
  clockToleranceSeconds: number;
  logger: Pick<Logger, 'info'>;
}

/** What the gateway hands the authorization server for its access tokens; the rest comes from the provider's own options. */
export type AccessTokenServices = Pick<AccessTokenEndpointOptions, 'publicKeys' | 'revocations' | 'grants' | 'introspectionClients'>;

/**
 * oidc-provider's introspection feature, with the configured introspection clients as static
 * confidential clients that can do nothing else (no grant types, no redirect URIs). Off, and absent
 * from the discovery metadata, while no introspection client is configured.
 */
export function introspectionSettings(clients: readonly IntrospectionClient[]): {
  feature: NonNullable<Configuration['features']>['introspection'];
  staticClients: NonNullable<Configuration['clients']>;
} {
  const allowed = new Set(clients.map((client) => client.clientId));
  return {
    feature: {
      enabled: clients.length > 0,
      // Opaque tokens oidc-provider finds itself are refresh tokens; no resource server receives
      // those, so they are never introspected for anyone.
      allowedPolicy: async (_ctx, client, token) => allowed.has(client.clientId) && token.kind === 'AccessToken',
    },
    staticClients: clients.map((client) => ({
      client_id: client.clientId,
      client_secret: client.clientSecret,
      client_name: `introspection client ${client.clientId}`,
      grant_types: [],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    })),
  };
}

/** `extraTokenClaims`: every access token names its grant, so revoking the grant can reach it. */
export async function grantIdClaim(_ctx: KoaContextWithOIDC, token: object): Promise<Record<string, string> | undefined> {
  const grantId = (token as { grantId?: unknown }).grantId;
  return typeof grantId === 'string' ? { [GRANT_ID_CLAIM]: grantId } : undefined;
}

/**
 * For an authorization server built without the gateway around it (tests of other parts): a
 * revocation list of its own on the same storage, and no introspection clients.
 */
export function standaloneAccessTokenOptions(
  storage: Storage,
  secretBox: SecretBox,
  accessTokenTtl: number,
  adapterPolicy: AdapterPolicy,
  signingKeys: readonly JWK[],
  logger: Pick<Logger, 'info' | 'warn'>,
): AccessTokenServices {
  const revocations = new RevocationList({ storage, retentionSeconds: revocationRetentionSeconds(accessTokenTtl), pollIntervalMs: 1000, logger });
  const publicKeys = signingKeys.map(({ d: _private, ...publicPart }) => publicPart);
  return {
    publicKeys: () => publicKeys,
    revocations,
    grants: createGrantRevoker({ storage, secretBox, revocations, adapterPolicy, logger }),
    introspectionClients: [],
  };
}

/** Lets oidc-provider authenticate the client, then answers for JWT access tokens it refused. */
export function answerForAccessTokens(provider: Provider, options: AccessTokenEndpointOptions): void {
  const refusedStructured = new WeakSet<object>();
  const mark = (ctx: KoaContextWithOIDC, error: unknown) => {
    // Thrown right after client authentication succeeded (oidc-provider's reject_structured_tokens).
    if (error instanceof errors.UnsupportedTokenType) refusedStructured.add(ctx);
  };
  provider.on('revocation.error', mark);
  provider.on('introspection.error', mark);
  const introspectors = new Set(options.introspectionClients.map((client) => client.clientId));

  provider.use(async (ctx, next) => {
    await next();
    if (!refusedStructured.has(ctx)) return;
    const oidc = (ctx as KoaContextWithOIDC).oidc;
    const client = oidc.client;
    const token = oidc.params?.token;
    if (client === undefined || typeof token !== 'string') return;
    const claims = await verifiedAccessToken(token, options);
    ctx.status = 200;
    ctx.set('cache-control', 'no-store');
    if (oidc.route === 'revocation') {
      await revokeAccessToken(claims, client.clientId, options);
      ctx.body = '';
      return;
    }
    ctx.body = introspectors.has(client.clientId) ? await introspectionOf(provider, claims, options) : { active: false };
  });
}

/** Claims of a token whose signature, issuer, type and lifetime hold; undefined for anything else. */
async function verifiedAccessToken(token: string, options: AccessTokenEndpointOptions): Promise<JWTPayload | undefined> {
  try {
    const { payload } = await jwtVerify(token, createLocalJWKSet({ keys: options.publicKeys() }), {
      issuer: options.issuer,
      algorithms: ['ES256'],
      typ: 'at+jwt',
      clockTolerance: options.clockToleranceSeconds,
      requiredClaims: ['exp', 'sub', 'client_id'],
    });
    return payload;
  } catch (error) {
    if (error instanceof joseErrors.JOSEError) return undefined;
    throw error;
  }
}

async function revokeAccessToken(claims: JWTPayload | undefined, clientId: string, options: AccessTokenEndpointOptions): Promise<void> {
  if (claims === undefined) return; // RFC 7009 §2.2: an invalid token needs no revocation
  if (claims.client_id !== clientId) {
    options.logger.info({ event: 'revocation.not_owner', clientId }, 'revocation of another client’s access token ignored');
    return;
  }
  const grantId = claims[GRANT_ID_CLAIM];
  if (typeof grantId !== 'string') {
    // Issued before access tokens named their grant: it expires within one access-token lifetime.
    options.logger.info({ event: 'revocation.no_grant', clientId }, 'access token names no grant; left to expire');
    return;
  }
  await options.grants.revokeGrant(grantId, 'access_token_revoked');
}

/** RFC 7662 §2.2 for one of our JWTs: active only while the gateway itself would accept it. */
async function introspectionOf(provider: Provider, claims: JWTPayload | undefined, options: AccessTokenEndpointOptions): Promise<Record<string, unknown>> {
  const inactive = { active: false };
  if (claims === undefined) return inactive;
  const grantId = claims[GRANT_ID_CLAIM];
  if (typeof grantId === 'string') {
    if (options.revocations.isRevoked(grantId)) return inactive;
    // Introspection is not the hot path: the grant itself must still exist, and belong to this client and user.
    const grant = await provider.Grant.find(grantId);
    if (grant === undefined || grant.clientId !== claims.client_id || grant.accountId !== claims.sub) return inactive;
  }
  if ((await options.storage.get(NS.users, String(claims.sub))) === undefined) return inactive;
  return {
    active: true,
    iss: claims.iss,
    sub: claims.sub,
    client_id: claims.client_id,
    aud: claims.aud,
    scope: claims.scope,
    exp: claims.exp,
    iat: claims.iat,
    jti: claims.jti,
    token_type: 'Bearer',
  };
}
