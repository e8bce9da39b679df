/**
 * The authorization server facade on the gateway's origin: metadata, registration (DCR and CIMD),
 * /authorize with consent and the upstream login, /token, /revoke, /jwks. This module is the only door
 * to oidc-provider; the rest of the gateway sees `handle()` and the public keys.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { JWK } from 'jose';
import type { Storage } from '../storage/types.ts';
import type { SecretBox } from '../storage/secret-box.ts';
import type { IdentityProvider } from '../idp/types.ts';
import type { Logger } from '../observability/logger.ts';
import type { GatewayConfig } from '../config/schema.ts';
import { sendJson } from '../http/errors.ts';
import { renderPage, html, pageSecurityHeaders, type PageBranding } from '../ui/layout.ts';
import { createProvider, registrableScopes, resolveResource, type ProtectedResource } from './provider.ts';
import { createInteractions } from './interactions/index.ts';
import { createCimdFetch } from './cimd.ts';
import { grantableScope } from './request-scope.ts';
import { publicJwks, type GatewayKeys } from './keys.ts';
import { createRegistrationGuards } from './registration.ts';
import { systemClock, type Clock } from '../core/clock.ts';

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
}

export interface AuthorizationServer {
  /** Handles the request when it belongs to the authorization server; false otherwise. */
  handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean>;
  publicKeys(): JWK[];
  close(): Promise<void>;
}

/**
 * Metadata locations clients probe (CLIENTS.md §1): RFC 8414 and OIDC discovery at the root, the
 * path-inserted forms for an MCP URL treated as an issuer, and the path-appended OIDC form. All serve
 * the same document, whose `issuer` is always the gateway origin.
 */
export function isMetadataPath(pathname: string): boolean {
  return (
    pathname === '/.well-known/oauth-authorization-server' ||
    pathname.startsWith('/.well-known/oauth-authorization-server/') ||
    pathname.startsWith('/.well-known/openid-configuration/') ||
    (pathname.endsWith('/.well-known/openid-configuration') && pathname !== '/.well-known/openid-configuration')
  );
}

/**
 * CORS preflight answer for /register. No credentials are involved (no cookies, and
 * `Access-Control-Allow-Credentials` is never sent), so any origin may register, with whatever request
 * headers its MCP client library adds (the SDK adds `MCP-Protocol-Version`, which a fixed list would
 * refuse and with it the whole registration).
 */
function registrationPreflightHeaders(req: IncomingMessage): Record<string, string> {
  const requested = req.headers['access-control-request-headers'];
  return {
    'access-control-allow-origin': '*',
    'access-control-allow-methods': 'POST',
    'access-control-allow-headers': typeof requested === 'string' && requested.length <= 1024 ? requested : 'content-type, authorization, mcp-protocol-version',
    'access-control-max-age': '600',
    'cache-control': 'no-store',
  };
}

const PROVIDER_ROUTES = /^\/(authorize(\/[^/]+)?|token|register|revoke|jwks|\.well-known\/openid-configuration)$/;

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

  const { normalisedRegistration, registrationWithinLimit } = createRegistrationGuards({
    storage: options.storage,
    logger,
    knownScopes: scopes,
    trustProxy: config.trustProxy,
    rateLimit: config.registration.rateLimit,
    now: () => (options.clock ?? systemClock).now(),
  });

  async function handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const { pathname } = url;
    const method = req.method ?? 'GET';

    const interaction = /^\/interaction\/([A-Za-z0-9_-]+)(\/decision)?$/.exec(pathname);
    if (interaction?.[1]) {
      if (!interaction[2] && method === 'GET') await interactions.showConsent(req, res, interaction[1]);
      else if (interaction[2] && method === 'POST') await interactions.decide(req, res, interaction[1]);
      else sendJson(res, 405, { error: 'invalid_request', error_description: 'method not allowed' }, { allow: interaction[2] ? 'POST' : 'GET' });
      return true;
    }
    if (pathname === '/callback') {
      if (method !== 'GET') {
        sendJson(res, 405, { error: 'invalid_request', error_description: 'method not allowed' }, { allow: 'GET' });
      } else {
        await interactions.callback(req, res, url);
      }
      return true;
    }
    if (isMetadataPath(pathname)) {
      req.url = '/.well-known/openid-configuration';
      await callback(req, res);
      return true;
    }
    if (PROVIDER_ROUTES.test(pathname)) {
      if (pathname === '/register') {
        // Browser-based clients (MCP Inspector) register cross-origin; oidc-provider has no CORS there.
        // No credentials are involved, so any origin may call it.
        if (method === 'OPTIONS') {
          res.writeHead(204, registrationPreflightHeaders(req));
          res.end();
          return true;
        }
        res.setHeader('access-control-allow-origin', '*');
        if (method === 'POST' && !(await registrationWithinLimit(req, res))) return true;
        if (method === 'POST' && req.headers['content-type']?.startsWith('application/json')) {
          const replay = await normalisedRegistration(req, res);
          if (replay) await callback(replay, res);
          return true;
        }
      }
      if (pathname === '/authorize' && method === 'GET') rewriteAuthorizationScope(req, url);
      await callback(req, res);
      return true;
    }
    return false;
  }

  /** Applies the default scope (RFC 6749 §3.3) for the MCP server the request targets. */
  function rewriteAuthorizationScope(req: IncomingMessage, url: URL): void {
    const indicators = url.searchParams.getAll('resource');
    const server = resolveResource(options.resources, options.canonicalizeResource, indicators.length > 1 ? indicators : indicators[0]);
    if (!server) return; // oidc-provider answers an unknown resource with invalid_target; consent refuses several
    url.searchParams.set('scope', grantableScope(url.searchParams.get('scope'), server));
    req.url = `${url.pathname}${url.search}`;
  }

  return {
    handle,
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
