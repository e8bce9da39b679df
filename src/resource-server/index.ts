/**
 * The resource-server side of the gateway: Protected Resource Metadata, bearer-token checks and the
 * streaming proxy to each configured MCP server.
 *
 * Per request: route (Host and longest path prefix) -> Origin check -> CORS preflight -> token ->
 * scopes -> IdP token (when configured) -> proxy. The common case (a token seen before) runs
 * synchronously from the token cache: no signature check, no storage read, no promise, no per-request
 * info log (DESIGN.md, Performance).
 *
 * Host routing: a server with `host` is matched only when the request's `Host` header names that host
 * (case-insensitively, default port ignored). The `Host` header is used as received, also with
 * `trustProxy`: `X-Forwarded-Host` is never consulted, so a reverse proxy in front must pass the
 * client's Host through (nginx `proxy_set_header Host $host`; Traefik and Caddy do it by default).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JWK } from 'jose';
import type { ServerConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { UserRecord } from '../storage/records.ts';
import { sendBearerChallenge } from './challenge.ts';
import { createResourceGuard, protectedServerFor } from './guard.ts';
import type { GuardDenial, GuardResult, ProtectedServer, ResourceGuard } from './guard.ts';
import { ProtectedResourceMetadataEndpoints } from './protected-resource-metadata.ts';
import { createOriginPolicy } from './origin.ts';
import type { OriginPolicy } from './origin.ts';
import { UpstreamPools, UpstreamProxy } from '../proxy/http-proxy.ts';
import { JsonRpcCode, sendJsonRpcError } from '../core/jsonrpc.ts';
import { ErrorCode, GatewayError } from '../core/errors.ts';
import { gatewayOrigin, hostKey, issuerFromPublicUrl, PRM_WELL_KNOWN } from '../core/resource-uri.ts';
import { createTokenVerifier } from './token-verifier.ts';
import type { TokenVerifier } from './token-verifier.ts';
import type { UpstreamTarget, UpstreamTargets } from '../proxy/upstream-targets.ts';
import type { IdpTokenSource } from '../idp/idp-tokens.ts';
import type { Clock } from '../core/clock.ts';

export {
  canonicalizeResource, hostKey, issuerFromPublicUrl, protectedResourceMetadataUrl, protectedResourceMetadataUrlOf, resourceFor, resourceUriFor,
} from '../core/resource-uri.ts';
export type { ResourceLocator } from '../core/resource-uri.ts';
export { createResourceGuard, protectedServerFor } from './guard.ts';
export type { GuardDenial, GuardGrant, GuardResult, ProtectedServer, ResourceGuard, ResourceGuardOptions } from './guard.ts';
export { bearerChallenge, sendBearerChallenge } from './challenge.ts';
export type { BearerErrorCode, ChallengeParams } from './challenge.ts';
export { appendIdentityHeaders, encodeIdentity, identityHeaderPlan } from './identity-headers.ts';
export { createTokenVerifier, extractBearerToken } from './token-verifier.ts';
export type { TokenVerifier, VerifiedToken } from './token-verifier.ts';

export interface ResourceServerOptions {
  /** The authorization server's issuer, which is also the gateway's public URL (an origin). */
  issuer: string;
  servers: readonly ServerConfig[];
  /** Current public signing keys of the authorization server (in-process, no HTTP). */
  publicKeys: () => JWK[];
  /** Looks a user up by the token's `sub`; called once per token, not per request. */
  findUser: (sub: string) => Promise<UserRecord | undefined>;
  logger: Logger;
  /** Where each server's traffic goes (src/proxy/upstream-targets.ts); by default the configured `url`. */
  upstreams?: UpstreamTargets;
  /** The user's IdP access token, for servers configured with `idpToken`. */
  idpTokens?: IdpTokenSource;
  /** Decides token expiry and cache lifetimes (the system clock by default). */
  clock?: Clock;
  /** A token verifier to share (its cache) with forward-auth; by default one of its own. */
  verifier?: TokenVerifier;
  /**
   * The client's address for `X-Forwarded-For` (src/http/client-address.ts honours `trustProxy`);
   * by default the socket's peer address.
   */
  clientAddress?: (req: IncomingMessage) => string | undefined;
}

export interface ResourceServer {
  /**
   * Handles the request when it is for a Protected Resource Metadata document or an MCP server route
   * (the route path itself or anything under it, on the route's host) and returns true. Returns false,
   * having touched nothing, for any other request (app.ts then answers a plain JSON 404).
   */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  /** The token checks, shared with forward-auth (one token cache, one IdP-token cache). */
  readonly guard: ResourceGuard;
  /** Stops the upstream connection pools (open SSE streams are cut after a short grace period). */
  close(): Promise<void>;
}

interface Route {
  readonly server: ServerConfig;
  readonly protected: ProtectedServer;
  /** Host key (`host[:port]`, lowercase, default port dropped) or undefined for any Host. */
  readonly host: string | undefined;
  readonly path: string;
  readonly prefix: string;
  readonly origins: OriginPolicy;
  /** Client-sent request headers never passed upstream for this route. */
  readonly dropHeaders: ReadonlySet<string>;
  readonly target: UpstreamTarget | undefined;
  /** Undefined for forward-auth servers: their traffic does not pass through the gateway. */
  readonly proxy: UpstreamProxy | undefined;
}

const ALLOWED_METHODS = 'GET, POST, DELETE, OPTIONS';
/** Request headers a browser MCP client sends (MCP Transports; `Mcp-Method`/`Mcp-Name` from 2026-07-28). */
const ALLOWED_REQUEST_HEADERS = 'authorization, content-type, accept, mcp-session-id, mcp-protocol-version, last-event-id, mcp-method, mcp-name';
/** Response headers browser clients must be able to read: the session id and the 401/403 challenge. */
const EXPOSED_HEADERS = 'mcp-session-id, mcp-protocol-version, www-authenticate';

export function createResourceServer(options: ResourceServerOptions): ResourceServer {
  const issuer = issuerFromPublicUrl(options.issuer);
  const ownOrigin = gatewayOrigin(issuer);
  const scheme = new URL(issuer).protocol;
  const forwardedProto = scheme.slice(0, -1);
  const logger = options.logger;
  const verifier: TokenVerifier = options.verifier ?? createTokenVerifier({ issuer, publicKeys: options.publicKeys, clock: options.clock });
  const guard = createResourceGuard({ verifier, findUser: options.findUser, idpTokens: options.idpTokens, logger, clock: options.clock });
  const metadata = new ProtectedResourceMetadataEndpoints(issuer, options.servers);
  const pools = new UpstreamPools();
  const clientAddress = options.clientAddress ?? ((req: IncomingMessage) => req.socket.remoteAddress);

  const targets = options.servers.map((server) => targetFor(server, options.upstreams));
  options.servers.forEach((server, index) => {
    const target = targets[index];
    if (target && !target.serve) pools.register(target.url, server.upstreamTimeoutMs);
  });
  const routes: Route[] = options.servers.map((server, index) => {
    const target = targets[index];
    const guarded = protectedServerFor(issuer, server);
    const dropHeaders = new Set(guarded.reservedHeaders);
    return {
      server,
      protected: guarded,
      host: server.host === undefined ? undefined : hostKey(server.host, scheme),
      path: server.path,
      prefix: `${server.path}/`,
      // The server's own origin (another host for host-routed servers) is as trusted as the gateway's.
      origins: createOriginPolicy(ownOrigin, [new URL(guarded.resource).origin, ...server.allowedOrigins]),
      dropHeaders,
      target,
      // In-process targets (the stdio bridge) are called directly; only network upstreams get a proxy.
      proxy: target && !target.serve
        ? new UpstreamProxy({
          name: server.name,
          url: target.url,
          transport: target.transport,
          routePath: server.path,
          timeoutMs: server.upstreamTimeoutMs,
          maxRequestBytes: server.maxRequestBytes,
          dispatcher: pools.get(target.url),
          logger,
        })
        : undefined,
    };
  });
  // Longest path first, so `/mcp/admin` wins over `/mcp`.
  const byLength = (a: Route, b: Route): number => b.path.length - a.path.length;
  const anyHostRoutes = routes.filter((route) => route.host === undefined && route.target !== undefined).sort(byLength);
  const hostRoutes = new Map<string, Route[]>();
  for (const route of routes) {
    if (route.host === undefined || route.target === undefined) continue;
    const list = hostRoutes.get(route.host) ?? [];
    list.push(route);
    hostRoutes.set(route.host, list.sort(byLength));
  }

  function match(list: readonly Route[], path: string): Route | undefined {
    for (const route of list) if (path === route.path || path.startsWith(route.prefix)) return route;
    return undefined;
  }

  /** Host-routed servers first (on their host only), then the servers reachable on any Host. */
  function routeFor(host: string | undefined, path: string): Route | undefined {
    if (hostRoutes.size > 0 && host !== undefined) {
      const list = hostRoutes.get(host) ?? hostRoutes.get(hostKey(host, scheme) ?? '');
      const route = list && match(list, path);
      if (route) return route;
    }
    return match(anyHostRoutes, path);
  }

  function handleRoute(route: Route, req: IncomingMessage, res: ServerResponse, path: string, search: string): void {
    const origin = req.headers.origin;
    if (!route.origins.allows(origin)) {
      // MCP Transports: a bad Origin gets 403 (DNS-rebinding protection). No CORS headers: the page
      // that sent it may not read the answer.
      sendJsonRpcError(res, 403, JsonRpcCode.FORBIDDEN, 'Origin not allowed');
      return;
    }
    const cors = origin === undefined ? undefined : corsHeaders(origin);
    const method = req.method;
    if (method === 'OPTIONS') {
      sendPreflight(req, res, cors);
      return;
    }
    if (method !== 'POST' && method !== 'GET' && method !== 'DELETE') {
      sendJsonRpcError(res, 405, JsonRpcCode.TRANSPORT_REFUSED, 'Method not allowed', { ...cors, allow: ALLOWED_METHODS });
      return;
    }
    const subPath = path.length === route.path.length ? '' : path.slice(route.path.length);
    if (subPath !== '' && escapesRoute(subPath)) {
      sendJsonRpcError(res, 400, JsonRpcCode.TRANSPORT_REFUSED, 'Invalid path', cors);
      return;
    }

    const result = guard.check(route.protected, req.headers.authorization, search);
    if (!(result instanceof Promise)) {
      proceed(route, result, req, res, subPath, search, cors);
      return;
    }
    result.then(
      (outcome) => {
        if (!res.destroyed) proceed(route, outcome, req, res, subPath, search, cors);
      },
      (error: unknown) => {
        logger.error({ err: error, server: route.server.name }, 'gateway request failed');
        if (!res.headersSent) sendJsonRpcError(res, 500, JsonRpcCode.INTERNAL_ERROR, 'Internal gateway error', cors);
        else res.destroy();
      },
    );
  }

  function proceed(
    route: Route, result: GuardResult, req: IncomingMessage, res: ServerResponse, subPath: string, search: string, cors: Record<string, string> | undefined,
  ): void {
    if (!result.ok) {
      sendDenial(res, result, cors);
      return;
    }
    const inProcess = route.target?.serve;
    if (inProcess !== undefined) {
      // The stdio bridge in this process: no loopback hop. It never sees the client's headers as
      // identity (the user comes from the token check), so nothing needs stripping or adding.
      if (cors !== undefined) for (const name in cors) res.setHeader(name, cors[name] as string);
      inProcess(req, res, result.user, subPath, search);
      return;
    }
    const addHeaders: string[] = [];
    guard.appendUpstreamHeaders(addHeaders, route.protected, result);
    // The gateway's own forwarding headers; the client's were dropped (proxy.ts).
    const address = clientAddress(req);
    if (address !== undefined) addHeaders.push('x-forwarded-for', address);
    addHeaders.push('x-forwarded-proto', forwardedProto);
    const host = req.headers.host;
    if (host !== undefined) addHeaders.push('x-forwarded-host', host);
    (route.proxy as UpstreamProxy).forward(req, res, { subPath, search, dropHeaders: route.dropHeaders, addHeaders, responseHeaders: cors });
  }

  return {
    guard,
    handle(req, res) {
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const path = q === -1 ? url : url.slice(0, q);
      if (path.startsWith(PRM_WELL_KNOWN)) {
        if (!metadata.matches(path, req.headers.host)) return false;
        metadata.serve(req, res, path);
        return true;
      }
      const route = routeFor(req.headers.host, path);
      if (route === undefined) return false;
      try {
        handleRoute(route, req, res, path, q === -1 ? '' : url.slice(q + 1));
      } catch (error) {
        logger.error({ err: error, server: route.server.name }, 'gateway request failed');
        if (!res.headersSent) sendJsonRpcError(res, 500, JsonRpcCode.INTERNAL_ERROR, 'Internal gateway error');
        else res.destroy();
      }
      return true;
    },
    async close() {
      guard.clear();
      await pools.close();
    },
  };
}

/**
 * Where a server's traffic goes: the running target when `upstreams` is given, the configured URL
 * otherwise, nothing for forward-auth servers.
 */
function targetFor(server: ServerConfig, upstreams: UpstreamTargets | undefined): UpstreamTarget | undefined {
  if ('forwardAuth' in server.upstream) return undefined;
  const target = upstreams?.get(server.name);
  if (target) return target;
  if ('url' in server.upstream) return { url: server.upstream.url, transport: server.upstream.transport };
  throw new GatewayError(ErrorCode.PROXY_UPSTREAM_UNDEFINED, `server "${server.name}" has no URL of its own (built-in or stdio); pass it through the upstreams option`);
}

/** A refused request: the Bearer challenge, or a JSON-RPC error when the IdP is unreachable. */
function sendDenial(res: ServerResponse, denial: GuardDenial, cors: Record<string, string> | undefined): void {
  if (denial.kind === 'challenge') sendBearerChallenge(res, denial.challenge, cors);
  else sendJsonRpcError(res, denial.status, JsonRpcCode.SERVER_UNAVAILABLE, denial.message, { ...cors, 'retry-after': '5' });
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
