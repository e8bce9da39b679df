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
import { readBody } from '../http/body.ts';
import { renderPage, html, pageSecurityHeaders, type PageBranding } from '../ui/layout.ts';
import { createProvider, registrableScopes, type ProtectedResource } from './provider.ts';
import { createAuthorizationHandlers, type AuthorizationHandlers } from './handlers.ts';
import { createInteractions } from './interactions.ts';
import { createCimdFetch } from './cimd.ts';
import { normaliseClientMetadata } from './client-metadata.ts';
import { publicJwks, type GatewayKeys } from './keys.ts';
import { NS } from '../storage/records.ts';
import { clientAddressResolver } from '../http/client-address.ts';
import { rateLimitDecision, rateLimitWindow, type RateLimitRule } from '../policy/rate-limit.ts';

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
  });

  /**
   * DCR bodies are normalised before oidc-provider sees them (see client-metadata.ts), so the real
   * registration requests of Cursor, VS Code and Claude succeed. oidc-provider then reads the
   * normalised body from a replay of the request; undefined means an error was already answered.
   */
  async function normalisedRegistration(req: IncomingMessage, res: ServerResponse): Promise<IncomingMessage | undefined> {
    try {
      const body = await readBody(req, 56 * 1024);
      let parsed: unknown;
      try {
        parsed = JSON.parse(body.toString('utf8'));
      } catch {
        throw new OAuthError('invalid_client_metadata', 'the registration body is not valid JSON');
      }
      const normalised = normaliseClientMetadata(parsed, { knownScopes: scopes, source: 'registration' });
      return replayWithBody(req, Buffer.from(JSON.stringify(normalised)));
    } catch (error) {
      sendOAuthError(res, error);
      return undefined;
    }
  }

  const clientAddress = clientAddressResolver(config.trustProxy);
  const registrationLimit: RateLimitRule = { limit: config.registration.rateLimit.perAddress, windowSeconds: config.registration.rateLimit.windowSeconds };

  /**
   * Registrations per client address (behind a proxy, the address `trustProxy` resolves), counted in
   * storage so replicas share the count. Over the limit: 429 (RFC 6585 §4) with `Retry-After`.
   * RFC 7591 §3.2.2 defines no rate-limit error, and lets servers use other codes; the body uses
   * `temporarily_unavailable`, the registered OAuth code for "cannot handle the request now, try
   * later" (RFC 6749 §4.1.2.1), so a generic OAuth client reads it as retryable, not as a rejection
   * of its metadata (which `invalid_client_metadata` would wrongly suggest). Returns false when answered.
   */
  async function registrationWithinLimit(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    if (registrationLimit.limit <= 0) return true;
    const address = clientAddress(req);
    const window = rateLimitWindow('register', address, registrationLimit, Date.now());
    const count = await options.storage.increment(NS.rateLimits, window.key, window.secondsLeft);
    const decision = rateLimitDecision(count, registrationLimit, window);
    if (decision.allowed) return true;
    // Logged once per window and address, not once per refused request, so a flood cannot flood the log.
    if (count === registrationLimit.limit + 1) logger.warn({ event: 'client.registration_rate_limited', address, limit: registrationLimit.limit, windowSeconds: registrationLimit.windowSeconds }, 'client registrations rate-limited');
    sendJson(
      res,
      429,
      { error: 'temporarily_unavailable', error_description: `Too many client registrations from this address; try again in ${decision.retryAfterSeconds} seconds.` },
      { 'retry-after': String(decision.retryAfterSeconds), 'access-control-allow-origin': '*', 'access-control-expose-headers': 'retry-after' },
    );
    return false;
  }

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

/**
 * The same request with another body: everything else (socket, method, url, listeners) is the
 * original's, through the prototype. oidc-provider reads bodies with `req.iterator()`.
 */
function replayWithBody(req: IncomingMessage, body: Buffer): IncomingMessage {
  async function* chunks() {
    yield body;
  }
  return Object.create(req, {
    readable: { value: true },
    readableEncoding: { value: null },
    headers: { value: { ...req.headers, 'content-length': String(body.length) } },
    iterator: { value: () => chunks() },
    [Symbol.asyncIterator]: { value: () => chunks() },
  }) as IncomingMessage;
}

/** oidc-provider's error page, in our layout, without internals (only the OAuth error and description). */
function renderProviderError(ctx: KoaContextWithOIDC, out: { error: string; error_description?: string }, branding: PageBranding): void {
  const body = html`<h1>The sign-in cannot continue</h1><p>${out.error_description ?? 'The request was not valid.'}</p><p class="muted">Error code: <code>${out.error}</code></p><p class="muted">You can close this window and start again from your application.</p>`;
  ctx.type = 'html';
  for (const [name, value] of Object.entries(pageSecurityHeaders(branding))) ctx.set(name, value);
  ctx.body = renderPage(branding, 'Sign-in error', body);
}
