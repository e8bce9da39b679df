import type { JWK } from 'jose';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { GatewayConfig } from '../config/schema.ts';
import { type Clock, systemClock } from '../core/clock.ts';
import type { IdentityProvider } from '../idp/types.ts';
import type { Logger } from '../observability/logger.ts';
import type { RevocationList } from '../storage/revocation-list.ts';
import type { SecretBox } from '../storage/secret-box.ts';
import type { Storage } from '../storage/types.ts';
import { html, type PageBranding, pageSecurityHeaders, renderPage } from '../ui/layout.ts';
import { createCimdFetch } from './cimd.ts';
import { createGrantRevoker, type GrantRevoker } from './grant-revocation.ts';
import { type AuthorizationHandlers, createAuthorizationHandlers } from './handlers.ts';
import { createInteractions } from './interactions/index.ts';
import { type GatewayKeys, publicJwks } from './keys.ts';
import { createProvider, type ProtectedResource, registrableScopes } from './provider.ts';
import { createRegistrationGuards } from './registration.ts';

export type { GrantRevoker } from './grant-revocation.ts';
export type { AuthorizationHandlers } from './handlers.ts';
export type { ProtectedResource } from './provider.ts';

export interface AuthorizationServerOptions {
  config: GatewayConfig;
  resources: ProtectedResource[];
  canonicalizeResource: (value: string) => string | undefined;
  storage: Storage;
  secretBox: SecretBox;
  keys: GatewayKeys;
  identityProviders: IdentityProvider[];
  extraCaPem?: string;
  logger: Logger;
  /** Times the registration rate-limit windows (the system clock by default). */
  clock?: Clock;
  /** The revoked grants every replica refuses the access tokens of (src/storage/revocation-list.ts). */
  revocations: RevocationList;
}

export interface AuthorizationServer {
  /** The route-table handlers (src/http/routes.ts) this room answers. */
  readonly handlers: AuthorizationHandlers;
  /** Grant revocation by grant, user or client (docs/tokens.md, "Revocation"). */
  readonly grants: GrantRevoker;
  publicKeys(): JWK[];
  close(): Promise<void>;
}

export async function createAuthorizationServer(options: AuthorizationServerOptions): Promise<AuthorizationServer> {
  const { config, logger } = options;
  const issuer = config.publicUrl; // the schema normalises it to the origin form
  const scopes = registrableScopes();
  const cimd = createCimdFetch({ ...config.clientIdMetadataDocuments, extraCaPem: options.extraCaPem, knownScopes: scopes, logger });
  const grants = createGrantRevoker({ storage: options.storage, revocations: options.revocations, adapterPolicy: config.registration, logger });
  const provider = providerFor(options, issuer, cimd.fetch, grants);
  const callback = provider.callback();
  const interactions = interactionsFor(options, provider, issuer);
  const { normalisedRegistration, registrationWithinLimit } = createRegistrationGuards({
    storage: options.storage,
    logger,
    knownScopes: scopes,
    trustProxy: config.trustProxy,
    rateLimit: config.registration.rateLimit,
    clock: options.clock,
  });
  const handlers = createAuthorizationHandlers({
    issuer,
    provider: callback,
    login: interactions,
    resources: options.resources,
    canonicalizeResource: options.canonicalizeResource,
    registrationWithinLimit,
    normalisedRegistration,
  });
  return {
    handlers,
    grants,
    publicKeys: () => publicJwks(options.keys),
    close: cimd.close,
  };
}

type CimdFetch = ReturnType<typeof createCimdFetch>['fetch'];

/** The oidc-provider instance, configured from the gateway config; its errors render in the gateway's layout. */
function providerFor(options: AuthorizationServerOptions, issuer: string, cimdFetch: CimdFetch, grants: GrantRevoker): ReturnType<typeof createProvider> {
  const { config } = options;
  const branding: PageBranding = config.ui;
  return createProvider({
    issuer,
    resources: options.resources,
    canonicalizeResource: options.canonicalizeResource,
    storage: options.storage,
    signingKeys: options.keys.signing,
    cookieKeys: options.keys.cookieKeys,
    trustProxy: config.trustProxy,
    tokens: config.tokens,
    secretBox: options.secretBox,
    clock: options.clock ?? systemClock,
    registration: config.registration,
    cimd: { ...config.clientIdMetadataDocuments, fetch: cimdFetch },
    renderError: (ctx, out) => renderProviderError(ctx, out, branding),
    logger: options.logger,
    accessTokens: {
      publicKeys: () => publicJwks(options.keys),
      revocations: options.revocations,
      grants,
      introspectionClients: config.introspection.clients,
    },
  });
}

/**
 * Consent and the upstream login. IdP tokens are kept as long as the gateway's refresh tokens live, and
 * consents as long as an idle client is kept, so neither outlives what it serves.
 */
function interactionsFor(
  options: AuthorizationServerOptions,
  provider: ReturnType<typeof createProvider>,
  issuer: string,
): ReturnType<typeof createInteractions> {
  const { config } = options;
  return createInteractions({
    provider,
    issuer,
    resources: options.resources,
    canonicalizeResource: options.canonicalizeResource,
    storage: options.storage,
    secretBox: options.secretBox,
    identityProviders: options.identityProviders,
    consentSecret: options.keys.consentSecret,
    branding: config.ui,
    logger: options.logger,
    tokenRetention: { idpTokens: config.tokens.refreshTokenTtl, consents: config.registration.idleClientTtl },
    clock: options.clock,
  });
}

/** oidc-provider's error page, in our layout, without internals (only the OAuth error and description). */
function renderProviderError(ctx: KoaContextWithOIDC, out: { error: string; error_description?: string }, branding: PageBranding): void {
  const body = html`<h1>The sign-in cannot continue</h1><p>${out.error_description ?? 'The request was not valid.'}</p><p class="muted">Error code: <code>${out.error}</code></p><p class="muted">You can close this window and start again from your application.</p>`;
  ctx.type = 'html';
  for (const [name, value] of Object.entries(pageSecurityHeaders(branding))) ctx.set(name, value);
  ctx.body = renderPage(branding, 'Sign-in error', body);
}
