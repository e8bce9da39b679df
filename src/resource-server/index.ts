/**
 * The resource-server side of the gateway: Protected Resource Metadata, bearer-token checks and the
 * streaming proxy to each configured MCP server.
 *
 * Per request: route (Host and longest path prefix, mcp-routes.ts) -> Origin check -> CORS preflight
 * -> token -> scopes -> IdP token (when configured) -> the per-call step (mcp-call.ts: rate limits once
 * the proxy has parsed the body, and the audit line when the response closes) -> proxy. The common case (a token seen before)
 * runs synchronously from the token cache: no signature check, no storage read, no promise, no
 * per-request info log, because this is the hot path whose cost the benchmarks compare with a bare proxy.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JWK } from 'jose';
import type { ServerConfig } from '../config/schema.ts';
import { type Clock, systemClock } from '../core/clock.ts';
import { ErrorCode, GatewayError } from '../core/errors.ts';
import { JsonRpcCode, sendJsonRpcError } from '../core/jsonrpc.ts';
import type { InProcessRequest, MessageScreen } from '../core/message-screen.ts';
import { gatewayOrigin, issuerFromPublicUrl } from '../core/resource-uri.ts';
import type { McpDispatch, RouteHandler, RouteHandlers } from '../http/router.ts';
import type { IdpTokenSource } from '../idp/idp-tokens.ts';
import type { Logger } from '../observability/logger.ts';
import type { McpRequestRecorder } from '../observability/mcp-requests.ts';
import type { TokenCacheStats, UpstreamPoolStats } from '../observability/metrics.ts';
import { type ForwardRefusal, UpstreamPools, type UpstreamProxy } from '../proxy/http-proxy.ts';
import type { UpstreamTargets } from '../proxy/upstream-targets.ts';
import type { UserRecord } from '../storage/records.ts';
import type { Storage } from '../storage/types.ts';
import { sendBearerChallenge } from './challenge.ts';
import { type CorsHeaders, corsHeaders, MCP_METHODS, sendPreflight } from './cors.ts';
import type { GuardDenial, GuardGrant, GuardResult, ResourceGuard } from './guard.ts';
import { createResourceGuard } from './guard.ts';
import { McpCall, type McpCallSettings, mcpCallSettings } from './mcp-call.ts';
import { McpRateLimiter } from './mcp-rate-limit.ts';
import { buildMcpRoutes, createMcpRouteMatcher, escapesRoute, type McpRoute, type McpRouteMatcher } from './mcp-routes.ts';
import { ProtectedResourceMetadataEndpoints } from './protected-resource-metadata.ts';
import { SessionOwners } from './session-owners.ts';
import type { TokenVerifier } from './token-verifier.ts';
import { createTokenVerifier } from './token-verifier.ts';

export type { ResourceLocator } from '../core/resource-uri.ts';
export {
  canonicalizeResource,
  hostKey,
  issuerFromPublicUrl,
  protectedResourceMetadataUrl,
  protectedResourceMetadataUrlOf,
  resourceFor,
  resourceUriFor,
} from '../core/resource-uri.ts';
export type { BearerErrorCode, ChallengeParams } from './challenge.ts';
export { bearerChallenge, sendBearerChallenge } from './challenge.ts';
export type { GuardDenial, GuardGrant, GuardResult, ProtectedServer, ResourceGuard, ResourceGuardOptions } from './guard.ts';
export { createResourceGuard, protectedServerFor } from './guard.ts';
export { appendIdentityHeaders, encodeIdentity, identityHeaderPlan } from './identity-headers.ts';
export type { TokenVerifier, VerifiedToken } from './token-verifier.ts';
export { createTokenVerifier, extractBearerToken } from './token-verifier.ts';

export interface ResourceServerOptions {
  /** The authorization server's issuer, which is also the gateway's public URL (an origin). */
  issuer: string;
  servers: readonly ServerConfig[];
  /** Current public signing keys of the authorization server (in-process, no HTTP). */
  publicKeys: () => JWK[];
  /** Reads the key set again for a token with an unknown `kid` (token-verifier.ts, docs/keys.md). */
  refreshKeys?: (kid: string) => Promise<boolean>;
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
  /** Whether a grant was revoked (src/storage/revocation-list.ts `isRevoked`); asked on every request. */
  isRevoked?: (grantId: string) => boolean;
  /**
   * The client's address for `X-Forwarded-For` (src/http/client-address.ts honours `trustProxy`);
   * by default the socket's peer address.
   */
  clientAddress?: (req: IncomingMessage) => string | undefined;
  /** Request counts and latencies per server (src/observability/mcp-requests.ts); none when metrics are off. */
  requests?: McpRequestRecorder;
  /** Extra request headers (names, `prefix*`) never passed from clients to upstreams (forgeable-headers.ts). */
  stripClientHeaders?: readonly string[];
  /** Where session owners are shared between replicas (session-owners.ts); in-process only without it. */
  storage?: Storage;
  /** The audit stream (src/observability/audit.ts): one line per MCP call. None: no call lines. */
  audit?: Logger;
  /** Where `servers[].rateLimits` are counted, shared by every replica (mcp-rate-limit.ts). */
  rateLimitStorage?: Storage;
}

export interface ResourceServer {
  /**
   * The hot path: claims a request for an MCP server route (the route path itself or anything under it,
   * on the route's host) and answers it, returning true; returns false, having touched nothing, for
   * any other request. `path` is the request path, `query` what follows `?` (src/http/router.ts).
   */
  readonly serveMcp: McpDispatch;
  /** The route-table handlers (src/http/routes.ts) this room answers: the Protected Resource Metadata. */
  readonly handlers: Required<Pick<RouteHandlers, 'protectedResourceMetadata'>>;
  /**
   * Both of the above for a resource server used on its own (without the gateway's router): true when
   * the request was an MCP route or a metadata document, and was answered.
   */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  /** The token checks, shared with forward-auth (one token cache, one IdP-token cache). */
  readonly guard: ResourceGuard;
  /** Stops the upstream connection pools (open SSE streams are cut after a short grace period). */
  close(): Promise<void>;
  /** The upstream keep-alive pools' connections, for the metrics scrape. */
  upstreamPoolStats(): UpstreamPoolStats[];
  /** The verified-token cache (shared with forward-auth), for the metrics scrape. */
  tokenCacheStats(): TokenCacheStats;
}

/** What a request needs once its route is found; built once per server. */
interface RequestContext {
  readonly guard: ResourceGuard;
  readonly sessions: SessionOwners;
  /** Each route's per-call step (rate limits, audit); absent for routes with neither. */
  readonly calls: ReadonlyMap<McpRoute, McpCallSettings>;
  readonly logger: Logger;
  readonly clientAddress: (req: IncomingMessage) => string | undefined;
}

export function createResourceServer(options: ResourceServerOptions): ResourceServer {
  const issuer = issuerFromPublicUrl(options.issuer);
  const scheme = new URL(issuer).protocol;
  const logger = options.logger;
  const verifier: TokenVerifier =
    options.verifier ??
    createTokenVerifier({ issuer, publicKeys: options.publicKeys, refreshKeys: options.refreshKeys, clock: options.clock, isRevoked: options.isRevoked });
  const guard = createResourceGuard({ verifier, findUser: options.findUser, idpTokens: options.idpTokens, logger, clock: options.clock });
  const pools = new UpstreamPools();
  const routes = buildMcpRoutes(options.servers, {
    issuer,
    ownOrigin: gatewayOrigin(issuer),
    upstreams: options.upstreams,
    pools,
    logger,
    stripClientHeaders: options.stripClientHeaders,
  });
  const context: RequestContext = {
    guard,
    sessions: new SessionOwners({ storage: options.storage, clock: options.clock ?? systemClock, logger }),
    calls: callSettings(routes, options),
    logger,
    clientAddress: options.clientAddress ?? ((req: IncomingMessage) => req.socket.remoteAddress),
  };

  const serveMcp = mcpDispatch(context, createMcpRouteMatcher(routes, scheme), options.requests);
  const protectedResourceMetadata = metadataHandler(new ProtectedResourceMetadataEndpoints(issuer, options.servers));
  return {
    guard,
    serveMcp,
    handlers: { protectedResourceMetadata },
    handle(req, res) {
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const path = q === -1 ? url : url.slice(0, q);
      return serveMcp(req, res, path, q === -1 ? '' : url.slice(q + 1)) || protectedResourceMetadata(req, res, { path, search: '', params: {} }) !== false;
    },
    async close() {
      guard.clear();
      await pools.close();
    },
    upstreamPoolStats: () => pools.stats(),
    tokenCacheStats: () => ({ entries: verifier.cacheSize, hits: verifier.cacheHits, misses: verifier.cacheMisses }),
  };
}

/** The per-call step of each route that has audit lines or rate limits. */
function callSettings(routes: readonly McpRoute[], options: ResourceServerOptions): Map<McpRoute, McpCallSettings> {
  const limited = routes.some((route) => route.server.rateLimits.length > 0);
  if (limited && options.rateLimitStorage === undefined) {
    throw new GatewayError(ErrorCode.RESOURCE_RATE_LIMIT_STORAGE_MISSING, 'servers with rateLimits need the rateLimitStorage option');
  }
  const limiter =
    limited && options.rateLimitStorage !== undefined
      ? new McpRateLimiter({ storage: options.rateLimitStorage, clock: options.clock ?? systemClock, logger: options.logger })
      : undefined;
  const calls = new Map<McpRoute, McpCallSettings>();
  for (const route of routes) {
    if (options.audit === undefined && route.server.rateLimits.length === 0) continue;
    calls.set(route, mcpCallSettings(route.server, options.audit, limiter));
  }
  return calls;
}

/** The hot path's entry: the route for the Host and path, then the request handed to it. */
function mcpDispatch(context: RequestContext, routeFor: McpRouteMatcher, requests: McpRequestRecorder | undefined): McpDispatch {
  return (req, res, path, query) => {
    const route = routeFor(req.headers.host, path);
    if (route === undefined) return false;
    if (requests !== undefined) requests.forServer(route.server.name).begin(req, res);
    try {
      handleRoute(context, route, req, res, path, query);
    } catch (error) {
      failed(context, route, res, error, undefined);
    }
    return true;
  };
}

/** A path the table sends here that names no document (another host's, say) is a 404. */
function metadataHandler(metadata: ProtectedResourceMetadataEndpoints): RouteHandler {
  return (req, res, target) => {
    if (!metadata.matches(target.path, req.headers.host)) return false;
    metadata.serve(req, res, target.path);
  };
}

/** Origin check, CORS preflight, method, path safety, then the token check (synchronous on a cache hit). */
function handleRoute(context: RequestContext, route: McpRoute, req: IncomingMessage, res: ServerResponse, path: string, search: string): void {
  const settings = context.calls.get(route);
  const call = settings === undefined ? undefined : new McpCall(settings, req, res);
  const origin = req.headers.origin;
  if (!route.origins.allows(origin)) {
    call?.denied('origin');
    // MCP Transports: a bad Origin gets 403 (DNS-rebinding protection). No CORS headers: the page
    // that sent it may not read the answer.
    sendJsonRpcError(res, 403, JsonRpcCode.FORBIDDEN, 'Origin not allowed');
    return;
  }
  const cors = corsHeaders(origin);
  const method = req.method;
  if (method === 'OPTIONS') {
    sendPreflight(req, res, cors);
    return;
  }
  if (method === 'HEAD') {
    // Gemini CLI probes the MCP URL with HEAD before anything else and looks for the challenge there:
    // without a valid token, HEAD gets the same 401 and WWW-Authenticate as GET (RFC 9110 §9.3.2),
    // with one, 405, since MCP defines no HEAD. Never forwarded upstream.
    headRequest(context, route, req, res, search, cors);
    return;
  }
  if (method !== 'POST' && method !== 'GET' && method !== 'DELETE') {
    call?.denied('transport');
    sendJsonRpcError(res, 405, JsonRpcCode.TRANSPORT_REFUSED, 'Method not allowed', { ...cors, allow: MCP_METHODS });
    return;
  }
  const subPath = path.length === route.path.length ? '' : path.slice(route.path.length);
  if (subPath !== '' && escapesRoute(subPath)) {
    call?.denied('transport');
    sendJsonRpcError(res, 400, JsonRpcCode.TRANSPORT_REFUSED, 'Invalid path', cors);
    return;
  }
  const result = context.guard.check(route.protected, req.headers.authorization, search);
  if (!(result instanceof Promise)) {
    proceed(context, route, result, req, res, subPath, search, cors, call);
    return;
  }
  result.then(
    (outcome) => {
      if (!res.destroyed) proceed(context, route, outcome, req, res, subPath, search, cors, call);
    },
    (error: unknown) => failed(context, route, res, error, cors),
  );
}

/** HEAD: the token check's challenge when it fails (node sends no body for HEAD), else 405. */
function headRequest(context: RequestContext, route: McpRoute, req: IncomingMessage, res: ServerResponse, search: string, cors: CorsHeaders): void {
  const answer = (result: GuardResult): void => {
    if (!result.ok) sendDenial(res, result, cors);
    else sendJsonRpcError(res, 405, JsonRpcCode.TRANSPORT_REFUSED, 'Method not allowed', { ...cors, allow: MCP_METHODS });
  };
  const result = context.guard.check(route.protected, req.headers.authorization, search);
  if (!(result instanceof Promise)) {
    answer(result);
    return;
  }
  result.then(
    (outcome) => {
      if (!res.destroyed) answer(outcome);
    },
    (error: unknown) => failed(context, route, res, error, cors),
  );
}

function proceed(
  context: RequestContext,
  route: McpRoute,
  result: GuardResult,
  req: IncomingMessage,
  res: ServerResponse,
  subPath: string,
  search: string,
  cors: CorsHeaders,
  call: McpCall | undefined,
): void {
  if (!result.ok) {
    call?.denied(result.kind === 'challenge' ? (result.challenge.error ?? 'missing_token') : 'unavailable');
    sendDenial(res, result, cors);
    return;
  }
  call?.granted(result);
  // Tool-level authorization (tool-policy.ts): only servers with rules get a screen.
  const screen = route.toolAccess?.screenFor(result);
  const inProcess = route.target?.serve;
  if (inProcess !== undefined) {
    const extras: InProcessRequest = { screen, clientId: result.token.claims.client_id };
    if (call !== undefined) {
      serveInProcessAdmitted(call, inProcess, extras, result, req, res, subPath, search, cors);
      return;
    }
    // The stdio bridge in this process: no loopback hop. It never sees the client's headers as
    // identity (the user comes from the token check), so nothing needs stripping or adding.
    if (cors !== undefined) for (const name in cors) res.setHeader(name, cors[name] as string);
    inProcess(req, res, result.user, subPath, search, extras);
    return;
  }
  const sessionId = req.headers['mcp-session-id'];
  const owner = ownerOf(result);
  if (typeof sessionId !== 'string') {
    forwardProxied(context, route, result, req, res, subPath, search, cors, screen, owner, call);
    return;
  }
  // A session belongs to the user and client that opened it (session-owners.ts).
  const verdict = context.sessions.check(route.server.name, sessionId, owner);
  if (!(verdict instanceof Promise)) {
    if (verdict === 'stranger') refuseSession(context, route, result, res, cors, call);
    else forwardProxied(context, route, result, req, res, subPath, search, cors, screen, undefined, call);
    return;
  }
  verdict.then(
    (known) => {
      if (res.destroyed) return;
      if (known === 'stranger') refuseSession(context, route, result, res, cors, call);
      else forwardProxied(context, route, result, req, res, subPath, search, cors, screen, undefined, call);
    },
    (error: unknown) => failed(context, route, res, error, cors),
  );
}

function forwardProxied(
  context: RequestContext,
  route: McpRoute,
  grant: GuardGrant,
  req: IncomingMessage,
  res: ServerResponse,
  subPath: string,
  search: string,
  cors: CorsHeaders,
  screen: MessageScreen | undefined,
  newSessionOwner: string | undefined,
  call: McpCall | undefined,
): void {
  const addHeaders = upstreamHeaders(context, route, grant, req);
  // Only a request without a session can open one; the owner is recorded as the answer goes back.
  const onSession = newSessionOwner === undefined ? undefined : (sessionId: string) => context.sessions.record(route.server.name, sessionId, newSessionOwner);
  (route.proxy as UpstreamProxy).forward(req, res, {
    subPath,
    search,
    dropHeaders: route.dropHeaders,
    addHeaders,
    responseHeaders: cors,
    screen,
    onSession,
    call,
  });
}

/** Kept on the token, so a request builds no string for it. */
const owners = new WeakMap<GuardGrant['token'], string>();
function ownerOf(grant: GuardGrant): string {
  let owner = owners.get(grant.token);
  if (owner === undefined) {
    owner = SessionOwners.ownerOf(grant.user.id, grant.token.claims.client_id);
    owners.set(grant.token, owner);
  }
  return owner;
}

/** MCP Transports: a session the caller does not own is answered like one that does not exist. */
function refuseSession(context: RequestContext, route: McpRoute, grant: GuardGrant, res: ServerResponse, cors: CorsHeaders, call: McpCall | undefined): void {
  call?.denied('session');
  context.logger.warn(
    { event: 'session.not_owner', server: route.server.name, userId: grant.user.id, clientId: grant.token.claims.client_id },
    "request named another user's or client's MCP session; refused as unknown",
  );
  sendJsonRpcError(res, 404, JsonRpcCode.SESSION_NOT_FOUND, 'Session not found', cors);
}

/**
 * The stdio bridge reads the body itself, so its calls are admitted before it does, counted as one
 * request each (docs/rate-limits.md: `user+tool` rules need a proxied server).
 */
function serveInProcessAdmitted(
  call: McpCall,
  inProcess: NonNullable<NonNullable<McpRoute['target']>['serve']>,
  extras: InProcessRequest,
  grant: GuardGrant,
  req: IncomingMessage,
  res: ServerResponse,
  subPath: string,
  search: string,
  cors: CorsHeaders,
): void {
  const serve = (): void => {
    if (cors !== undefined) for (const name in cors) res.setHeader(name, cors[name] as string);
    inProcess(req, res, grant.user, subPath, search, extras);
  };
  const refuse = (refusal: ForwardRefusal): void => {
    sendJsonRpcError(res, refusal.status, refusal.code, refusal.message, { ...cors, ...refusal.headers, connection: 'close' });
    req.resume();
  };
  const verdict = call.admit(undefined);
  if (verdict === undefined) serve();
  else if (!(verdict instanceof Promise)) refuse(verdict);
  else
    verdict.then(
      (later) => (res.destroyed ? undefined : later === undefined ? serve() : refuse(later)),
      (error: unknown) => res.destroy(error as Error),
    );
}

/** The identity headers of the grant, then the gateway's own forwarding headers (the client's were dropped, http-proxy.ts). */
function upstreamHeaders(context: RequestContext, route: McpRoute, grant: GuardGrant, req: IncomingMessage): string[] {
  const headers: string[] = [];
  context.guard.appendUpstreamHeaders(headers, route.protected, grant);
  const address = context.clientAddress(req);
  if (address !== undefined) headers.push('x-forwarded-for', address);
  headers.push('x-forwarded-proto', route.forwardedProto, 'x-forwarded-host', route.forwardedHost);
  return headers;
}

function failed(context: RequestContext, route: McpRoute, res: ServerResponse, error: unknown, cors: CorsHeaders): void {
  context.logger.error({ err: error, server: route.server.name }, 'gateway request failed');
  if (!res.headersSent) sendJsonRpcError(res, 500, JsonRpcCode.INTERNAL_ERROR, 'Internal gateway error', cors);
  else res.destroy();
}

/** A refused request: the Bearer challenge, or a JSON-RPC error when the IdP is unreachable. */
function sendDenial(res: ServerResponse, denial: GuardDenial, cors: CorsHeaders): void {
  if (denial.kind === 'challenge') sendBearerChallenge(res, denial.challenge, cors);
  else sendJsonRpcError(res, denial.status, JsonRpcCode.SERVER_UNAVAILABLE, denial.message, { ...cors, 'retry-after': '5' });
}
