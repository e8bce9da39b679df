/**
 * The authorization server facade on the gateway's origin: metadata, registration (DCR and CIMD),
 * /authorize with consent and the upstream login, /token, /revoke, /jwks. This module is the only door
 * to oidc-provider; the rest of the gateway sees its route handlers and the public keys.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { JWK } from 'jose';
import type { Storage } from '../storage/types.ts';
import type { SecretBox } from '../storage/secret-box.ts';
import type { IdentityProvider } from '../idp/types.ts';
import type { Logger } from '../observability/logger.ts';
import type { GatewayConfig } from '../config/schema.ts';
import { OAuthError, sendJson, sendOAuthError } from '../http/errors.ts';
import { renderPage, html, pageSecurityHeaders, type PageBranding } from '../ui/layout.ts';
import { createProvider, registrableScopes, type ProtectedResource } from './provider.ts';
import { createAuthorizationHandlers, type AuthorizationHandlers } from './handlers.ts';
import { createInteractions } from './interactions/index.ts';
import { createRegistrationGuards } from './registration.ts';
import type { Clock } from '../core/clock.ts';
import { createCimdFetch } from './cimd.ts';
import { publicJwks, type GatewayKeys } from './keys.ts';

export type { ProtectedResource } from './provider.ts';
export type { AuthorizationHandlers } from './handlers.ts';

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
}

export interface AuthorizationServer {
  /** The route-table handlers (src/http/routes.ts) this room answers. */
  readonly handlers: AuthorizationHandlers;
  publicKeys(): JWK[];
  close(): Promise<void>;
}

export async function createAuthorizationServer(options: AuthorizationServerOptions): Promise<AuthorizationServer> {
  const { config, logger } = options;
  const issuer = config.publicUrl; // the schema normalises it to the origin form
  const branding: PageBranding = config.ui;
  const scopes = registrableScopes();
  const cimd = createCimdFetch({ ...config.clientIdMetadataDocuments, extraCaPem: options.extraCaPem, knownScopes: scopes, logger });

  const provider = createProvider({
    issuer,
    resources: options.resources,
    canonicalizeResource: options.canonicalizeResource,
    storage: options.storage,
    signingKeys: options.keys.signing,
    cookieKeys: options.keys.cookieKeys,
    trustProxy: config.trustProxy,
    tokens: config.tokens,
    registration: config.registration,
    cimd: { ...config.clientIdMetadataDocuments, fetch: cimd.fetch },
    renderError: (ctx, out) => renderProviderError(ctx, out, branding),
    logger,
  });
  const callback = provider.callback();
  const interactions = createInteractions({
    provider,
    issuer,
    resources: options.resources,
    canonicalizeResource: options.canonicalizeResource,
    storage: options.storage,
    secretBox: options.secretBox,
    identityProviders: options.identityProviders,
    consentSecret: options.keys.consentSecret,
    branding,
    logger,
    tokenRetention: { idpTokens: config.tokens.refreshTokenTtl, consents: config.registration.idleClientTtl },
    clock: options.clock,
  });

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
    publicKeys: () => publicJwks(options.keys),
    close: cimd.close,
  };
}

/** oidc-provider's error page, in our layout, without internals (only the OAuth error and description). */
function renderProviderError(ctx: KoaContextWithOIDC, out: { error: string; error_description?: string }, branding: PageBranding): void {
  const body = html`<h1>The sign-in cannot continue</h1><p>${out.error_description ?? 'The request was not valid.'}</p><p class="muted">Error code: <code>${out.error}</code></p><p class="muted">You can close this window and start again from your application.</p>`;
  ctx.type = 'html';
  for (const [name, value] of Object.entries(pageSecurityHeaders(branding))) ctx.set(name, value);
  ctx.body = renderPage(branding, 'Sign-in error', body);
}
