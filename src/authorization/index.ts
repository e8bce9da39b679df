import type { IncomingMessage, ServerResponse } from 'node:http';
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
import { migrateCredentialsAtRest } from './at-rest-migration.ts';
import { createCimdFetch } from './cimd.ts';
import { type CimdGate, createCimdGate } from './cimd-gate.ts';
import { createGrantRevoker, type GrantRevoker } from './grant-revocation.ts';
import { type AuthorizationHandlers, createAuthorizationHandlers } from './handlers.ts';
import { createInteractions } from './interactions/index.ts';
import type { GatewayKeys } from './keys.ts';
import { createProvider, type ProtectedResource, registrableScopes } from './provider.ts';
import { attachSigningKeys } from './provider-keystore.ts';
import { createRegistrationGuards } from './registration.ts';
import type { SigningKeyRing } from './signing-key-ring.ts';

export type { GrantRevoker } from './grant-revocation.ts';
export type { AuthorizationHandlers } from './handlers.ts';
export type { ProtectedResource } from './provider.ts';

export interface AuthorizationServerOptions {
  config: GatewayConfig;
  resources: ProtectedResource[];
  canonicalizeResource: (value: string) => string | undefined;
  storage: Storage;
  secretBox: SecretBox;
  /** Cookie and consent secrets (the signing keys are read through `signingKeys`). */
  keys: Pick<GatewayKeys, 'cookieKeys' | 'consentSecret'>;
  /** The live signing keys (docs/keys.md): oidc-provider signs with the active one and publishes them all. */
  signingKeys: SigningKeyRing;
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
  // Before anything can answer: rows of older gateways holding credentials in plaintext are rewritten.
  await migrateCredentialsAtRest({ storage: options.storage, secretBox: options.secretBox, logger, idleClientTtl: config.registration.idleClientTtl });
  const scopes = registrableScopes();
  const gate = createCimdGate({
    ...config.clientIdMetadataDocuments,
    trustProxy: config.trustProxy,
    storage: options.storage,
    logger,
    clock: options.clock,
  });
  const cimd = createCimdFetch({
    ...config.clientIdMetadataDocuments,
    extraCaPem: options.extraCaPem,
    knownScopes: scopes,
    logger,
    onRefused: gate.recordFailure,
  });
  const grants = createGrantRevoker({
    storage: options.storage,
    secretBox: options.secretBox,
    revocations: options.revocations,
    adapterPolicy: config.registration,
    logger,
  });
  const provider = providerFor(options, issuer, { fetch: cimd.fetch, allowFetch: gate.allowFetch }, grants);
  const installSigningKeys = await attachSigningKeys(provider, options.signingKeys.state());
  // The key set may have changed while oidc-provider's internals were looked up: install it again,
  // then follow it (both synchronously, so no change falls between them).
  installSigningKeys(options.signingKeys.state());
  options.signingKeys.onChange(installSigningKeys);
  const callback = withFreshSigningKeys(provider.callback(), options.signingKeys);
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
    publicKeys: () => options.signingKeys.publicKeys(),
    close: cimd.close,
  };
}

type CimdHooks = { fetch: ReturnType<typeof createCimdFetch>['fetch']; allowFetch: CimdGate['allowFetch'] };

/** The oidc-provider instance, configured from the gateway config; its errors render in the gateway's layout. */
function providerFor(options: AuthorizationServerOptions, issuer: string, cimdHooks: CimdHooks, grants: GrantRevoker): ReturnType<typeof createProvider> {
  const { config } = options;
  const branding: PageBranding = config.ui;
  return createProvider({
    issuer,
    resources: options.resources,
    canonicalizeResource: options.canonicalizeResource,
    storage: options.storage,
    signingKeys: [options.signingKeys.state().active.jwk],
    cookieKeys: options.keys.cookieKeys,
    tokens: config.tokens,
    secretBox: options.secretBox,
    clock: options.clock ?? systemClock,
    registration: config.registration,
    cimd: { ...config.clientIdMetadataDocuments, ...cimdHooks },
    renderError: (ctx, out, error) => renderProviderError(ctx, out, error, branding),
    logger: options.logger,
    accessTokens: {
      publicKeys: () => options.signingKeys.publicKeys(),
      revocations: options.revocations,
      grants,
      introspectionClients: config.introspection.clients,
    },
  });
}

type RequestListener = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

/**
 * oidc-provider's listener behind the signing-key check: a key due to activate or retire is applied
 * (and the key record read again when the last read is a minute old) before anything is signed or the
 * JWKS is served. The JWKS may be cached for JWKS_MAX_AGE_SECONDS (document-caching.ts sets the header),
 * far less than a new key is published before it signs (signing-keys.ts), so a cached copy always knows
 * the key a fresh token names.
 */
function withFreshSigningKeys(listener: RequestListener, signingKeys: SigningKeyRing): RequestListener {
  return async (req, res) => {
    await signingKeys.ensureFresh();
    return listener(req, res);
  };
}

/**
 * Consent and the upstream login. IdP tokens are kept as long as the gateway's refresh tokens live, so
 * they do not outlive what they serve.
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
    tokenRetention: { idpTokens: config.tokens.refreshTokenTtl },
    clock: options.clock,
  });
}

/**
 * oidc-provider's error page, in our layout, without internals (only the OAuth error and description);
 * a rate-limit refusal (cimd-gate.ts) says when to try again.
 */
function renderProviderError(ctx: KoaContextWithOIDC, out: { error: string; error_description?: string }, error: Error, branding: PageBranding): void {
  const retryAfter = (error as { retryAfterSeconds?: unknown }).retryAfterSeconds;
  if (typeof retryAfter === 'number') ctx.set('retry-after', String(retryAfter));
  const body = html`<h1>The sign-in cannot continue</h1><p>${out.error_description ?? 'The request was not valid.'}</p><p class="muted">Error code: <code>${out.error}</code></p><p class="muted">You can close this window and start again from your application.</p>`;
  ctx.type = 'html';
  for (const [name, value] of Object.entries(pageSecurityHeaders(branding))) ctx.set(name, value);
  ctx.body = renderPage(branding, 'Sign-in error', body);
}
