/**
 * The resource-server side of the gateway: Protected Resource Metadata, bearer-token checks and the
 * streaming proxy to each configured MCP server.
 *
 * Per request: route (longest path prefix) -> Origin check -> CORS preflight -> token -> scopes -> proxy.
 * The common case (a token seen before) runs synchronously from the token cache: no signature check, no
 * storage read, no promise, no per-request info log (DESIGN.md, Performance).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JWK } from 'jose';
import type { ServerConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { UserRecord } from '../storage/records.ts';
import { sendBearerChallenge } from './challenge.ts';
import type { BearerErrorCode } from './challenge.ts';
import { appendIdentityHeaders, encodeIdentity, identityHeaderPlan } from './identity.ts';
import type { EncodedIdentity, IdentityHeaderPlan } from './identity.ts';
import { advertisedScopes, ProtectedResourceMetadataEndpoints } from './metadata.ts';
import { createOriginPolicy } from './origin.ts';
import type { OriginPolicy } from './origin.ts';
import { sendJsonRpcError, UpstreamPools, UpstreamProxy } from './proxy.ts';
import { gatewayOrigin, issuerFromPublicUrl, PRM_WELL_KNOWN, protectedResourceMetadataUrl, resourceFor } from './resource.ts';
import { createTokenVerifier, extractBearerToken } from './token-verifier.ts';
import type { TokenVerifier, VerifiedToken } from './token-verifier.ts';
import type { UpstreamTargets } from './upstream-targets.ts';
import type { IdpTokenSource } from '../upstream/idp-tokens.ts';

export { canonicalizeResource, issuerFromPublicUrl, protectedResourceMetadataUrl, resourceFor, resourceUriFor } from './resource.ts';

export interface GatewayOptions {
  /** The authorization server's issuer, which is also the gateway's public URL (an origin). */
  issuer: string;
  servers: readonly ServerConfig[];
  /** Current public signing keys of the authorization server (in-process, no HTTP). */
  publicKeys: () => JWK[];
  /** Looks a user up by the token's `sub`; called once per token, not per request. */
  findUser: (sub: string) => Promise<UserRecord | undefined>;
  logger: Logger;
  /** Where each server's traffic goes (src/gateway/upstream-targets.ts); by default the configured `url`. */
  upstreams?: UpstreamTargets;
  /** The user's IdP access token, for servers configured with `idpToken`. */
  idpTokens?: IdpTokenSource;
}

export interface Gateway {
  /**
   * Handles the request when it is for a Protected Resource Metadata document or an MCP server route
   * (the route path itself or anything under it) and returns true. Returns false, having touched
   * nothing, for any other request.
   */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  /** Stops the upstream connection pools (open SSE streams are cut after a short grace period). */
  close(): Promise<void>;
}

interface Route {
  readonly server: ServerConfig;
  readonly path: string;
  readonly prefix: string;
  readonly resource: string;
  readonly resourceMetadataUrl: string;
  /** Scopes a token must hold; also what challenges and PRM advertise. */
  readonly scopes: readonly string[];
  readonly origins: OriginPolicy;
  readonly identity: IdentityHeaderPlan;
  readonly proxy: UpstreamProxy;
}

const ALLOWED_METHODS = 'GET, POST, DELETE, OPTIONS';
/** Request headers a browser MCP client sends (MCP Transports; `Mcp-Method`/`Mcp-Name` from 2026-07-28). */
const ALLOWED_REQUEST_HEADERS = 'authorization, content-type, accept, mcp-session-id, mcp-protocol-version, last-event-id, mcp-method, mcp-name';
/** Response headers browser clients must be able to read: the session id and the 401/403 challenge. */
const EXPOSED_HEADERS = 'mcp-session-id, mcp-protocol-version, www-authenticate';

export function createGateway(options: GatewayOptions): Gateway {
  const issuer = issuerFromPublicUrl(options.issuer);
  const ownOrigin = gatewayOrigin(issuer);
  const logger = options.logger;
  const verifier: TokenVerifier = createTokenVerifier({ issuer, publicKeys: options.publicKeys });
  const metadata = new ProtectedResourceMetadataEndpoints(issuer, options.servers);
  const pools = new UpstreamPools();
  const resolve = (server: ServerConfig): string => options.upstreams?.get(server.name)?.url ?? defaultUpstreamUrl(server);

  const upstreamUrls = options.servers.map((server) => resolve(server));
  options.servers.forEach((server, index) => pools.register(upstreamUrls[index] ?? '', server.upstreamTimeoutMs));
  const routes: Route[] = options.servers.map((server, index) => {
    const url = upstreamUrls[index] ?? '';
    return {
      server,
      path: server.path,
      prefix: `${server.path}/`,
      resource: resourceFor(issuer, server),
      resourceMetadataUrl: protectedResourceMetadataUrl(issuer, server),
      scopes: advertisedScopes(server),
      origins: createOriginPolicy(ownOrigin, server.allowedOrigins),
      identity: identityHeaderPlan(server.identityHeaders),
      proxy: new UpstreamProxy({
        name: server.name,
        url,
        timeoutMs: server.upstreamTimeoutMs,
        maxRequestBytes: server.maxRequestBytes,
        dispatcher: pools.get(url),
        logger,
      }),
    };
  });
  // Longest path first, so `/mcp/admin` wins over `/mcp`.
  routes.sort((a, b) => b.path.length - a.path.length);

  const lookups = new WeakMap<VerifiedToken, Promise<EncodedIdentity | undefined>>();

  function routeFor(path: string): Route | undefined {
    for (const route of routes) if (path === route.path || path.startsWith(route.prefix)) return route;
    return undefined;
  }

  function handleRoute(route: Route, req: IncomingMessage, res: ServerResponse, path: string, search: string): void {
    const origin = req.headers.origin;
    if (!route.origins.allows(origin)) {
      // MCP Transports: a bad Origin gets 403 (DNS-rebinding protection). No CORS headers: the page
      // that sent it may not read the answer.
      sendJsonRpcError(res, 403, -32000, 'Origin not allowed');
      return;
    }
    const cors = origin === undefined ? undefined : corsHeaders(origin);
    const method = req.method;
    if (method === 'OPTIONS') {
      sendPreflight(req, res, cors);
      return;
    }
    if (method !== 'POST' && method !== 'GET' && method !== 'DELETE') {
      sendJsonRpcError(res, 405, -32000, 'Method not allowed', { ...cors, allow: ALLOWED_METHODS });
      return;
    }
    const subPath = path.length === route.path.length ? '' : path.slice(route.path.length);
    if (subPath !== '' && escapesRoute(subPath)) {
      sendJsonRpcError(res, 400, -32000, 'Invalid path', cors);
      return;
    }

    const bearer = extractBearerToken(req.headers.authorization, search);
    if (!bearer.ok) {
      if (bearer.reason === 'in_query') challenge(res, route, cors, 'invalid_request', 'Access tokens are accepted only in the Authorization header.');
      else if (bearer.reason === 'malformed') challenge(res, route, cors, 'invalid_token', 'The Authorization header is malformed.');
      else challenge(res, route, cors);
      return;
    }

    // Hot path: a token seen before, whose user is already known.
    const cached = verifier.peek(bearer.token, route.resource);
    if (cached !== undefined && cached.ok) {
      const identity = cached.token.identity;
      if (identity !== undefined) {
        authorize(route, cached.token, identity, req, res, subPath, search, cors);
        return;
      }
    }
    slowPath(route, bearer.token, req, res, subPath, search, cors).catch((error: unknown) => {
      logger.error({ err: error, server: route.server.name }, 'gateway request failed');
      if (!res.headersSent) sendJsonRpcError(res, 500, -32603, 'Internal gateway error', cors);
      else res.destroy();
    });
  }

  async function slowPath(
    route: Route, token: string, req: IncomingMessage, res: ServerResponse, subPath: string, search: string, cors: Record<string, string> | undefined,
  ): Promise<void> {
    const result = await verifier.verify(token, route.resource);
    if (!result.ok) {
      if (logger.isLevelEnabled('debug')) logger.debug({ server: route.server.name, reason: result.reason }, 'access token refused');
      challenge(res, route, cors, 'invalid_token', result.description);
      return;
    }
    const identity = result.token.identity ?? (await identityFor(result.token));
    if (identity === undefined) {
      challenge(res, route, cors, 'invalid_token', 'The user of this access token no longer exists.');
      return;
    }
    if (res.destroyed) return;
    authorize(route, result.token, identity, req, res, subPath, search, cors);
  }

  /**
   * Reads the token's user once and keeps it, with its encoded identity headers, on the cache entry.
   * Concurrent first requests share one read; a missing user is not remembered.
   */
  function identityFor(token: VerifiedToken): Promise<EncodedIdentity | undefined> {
    let pending = lookups.get(token);
    if (!pending) {
      pending = options.findUser(token.claims.sub).then(
        (user) => {
          lookups.delete(token);
          if (!user) return undefined;
          token.user = user;
          token.identity = encodeIdentity(user);
          return token.identity;
        },
        (error: unknown) => {
          lookups.delete(token);
          throw error;
        },
      );
      lookups.set(token, pending);
    }
    return pending;
  }

  function authorize(
    route: Route, token: VerifiedToken, identity: EncodedIdentity, req: IncomingMessage, res: ServerResponse,
    subPath: string, search: string, cors: Record<string, string> | undefined,
  ): void {
    for (const scope of route.scopes) {
      if (!token.scopes.has(scope)) {
        challenge(res, route, cors, 'insufficient_scope', 'The access token lacks a scope this MCP server requires.');
        return;
      }
    }
    const addHeaders: string[] = [];
    appendIdentityHeaders(addHeaders, route.identity, identity);
    route.proxy.forward(req, res, { subPath, search, dropHeaders: route.identity.names, addHeaders, responseHeaders: cors });
  }

  return {
    handle(req, res) {
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const path = q === -1 ? url : url.slice(0, q);
      if (path.startsWith(PRM_WELL_KNOWN)) {
        if (!metadata.matches(path)) return false;
        metadata.serve(req, res, path);
        return true;
      }
      const route = routeFor(path);
      if (route === undefined) return false;
      try {
        handleRoute(route, req, res, path, q === -1 ? '' : url.slice(q + 1));
      } catch (error) {
        logger.error({ err: error, server: route.server.name }, 'gateway request failed');
        if (!res.headersSent) sendJsonRpcError(res, 500, -32603, 'Internal gateway error');
        else res.destroy();
      }
      return true;
    },
    async close() {
      verifier.clear();
      await pools.close();
    },
  };
}

function defaultUpstreamUrl(server: ServerConfig): string {
  if ('url' in server.upstream) return server.upstream.url;
  throw Object.assign(new Error(`server "${server.name}" uses the built-in demo upstream; has no URL of its own; pass it through the upstreams option`), {
    code: 'ERR_GATEWAY_UPSTREAM',
  });
}

function challenge(
  res: ServerResponse, route: Route, cors: Record<string, string> | undefined, error?: BearerErrorCode, errorDescription?: string,
): void {
  sendBearerChallenge(res, { resourceMetadataUrl: route.resourceMetadataUrl, scopes: route.scopes, error, errorDescription }, cors);
}

/** CORS for an allowed browser origin: echo it (never `*`, the route is not public) and expose the MCP headers. */
function corsHeaders(origin: string): Record<string, string> {
  return { 'access-control-allow-origin': origin, 'access-control-expose-headers': EXPOSED_HEADERS, vary: 'origin' };
}

function sendPreflight(req: IncomingMessage, res: ServerResponse, cors: Record<string, string> | undefined): void {
  res.writeHead(204, {
    ...cors,
    allow: ALLOWED_METHODS,
    'access-control-allow-methods': ALLOWED_METHODS,
    'access-control-allow-headers': req.headers['access-control-request-headers'] ?? ALLOWED_REQUEST_HEADERS,
    'access-control-max-age': '600',
    'cache-control': 'no-store',
  });
  res.end();
}

/**
 * Dot segments and encoded slashes could make the upstream resolve a path outside the route's base
 * path (RFC 3986 §5.2.4); such paths are refused rather than normalised.
 */
function escapesRoute(subPath: string): boolean {
  const lower = subPath.toLowerCase();
  if (lower.includes('%2f') || lower.includes('%5c') || lower.includes('\\')) return true;
  if (!lower.includes('.') && !lower.includes('%2e')) return false;
  for (const segment of lower.replaceAll('%2e', '.').split('/')) if (segment === '.' || segment === '..') return true;
  return false;
}
