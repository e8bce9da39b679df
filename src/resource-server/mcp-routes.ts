/**
 * The MCP server routes: one per configured server, prepared once at start-up (its guard settings,
 * Origin policy, upstream target and proxy), and the matcher the hot path calls for every request.
 *
 * Host routing: a server with `host` is matched only when the request's `Host` header names that host
 * (case-insensitively, default port ignored). The `Host` header is used as received, also with
 * `trustProxy`: `X-Forwarded-Host` is never consulted, so a reverse proxy in front must pass the
 * client's Host through (nginx `proxy_set_header Host $host`; Traefik and Caddy do it by default).
 */
import type { ServerConfig } from '../config/schema.ts';
import { ErrorCode, GatewayError } from '../core/errors.ts';
import { hostKey } from '../core/resource-uri.ts';
import type { Logger } from '../observability/logger.ts';
import { type UpstreamPools, UpstreamProxy } from '../proxy/http-proxy.ts';
import type { UpstreamTarget, UpstreamTargets } from '../proxy/upstream-targets.ts';
import { forgeableHeaderFilter, type HeaderFilter } from './forgeable-headers.ts';
import { type ProtectedServer, protectedServerFor } from './guard.ts';
import { createOriginPolicy, type OriginPolicy } from './origin.ts';
import { ServerToolAccess } from './tool-policy.ts';

export interface McpRoute {
  readonly server: ServerConfig;
  readonly protected: ProtectedServer;
  /** Host key (`host[:port]`, lowercase, default port dropped) or undefined for any Host. */
  readonly host: string | undefined;
  readonly path: string;
  readonly prefix: string;
  readonly origins: OriginPolicy;
  /**
   * `X-Forwarded-Host` and `-Proto` for the upstream: the host and scheme of the server's resource URI,
   * the URL clients are told to call, never the request's `Host` (an upstream that builds links from
   * them must not build them on a host a client chose).
   */
  readonly forwardedHost: string;
  readonly forwardedProto: string;
  /** Client-sent request headers never passed upstream (one filter shared by every route, forgeable-headers.ts). */
  readonly dropHeaders: HeaderFilter;
  readonly target: UpstreamTarget | undefined;
  /** Undefined for forward-auth servers and in-process targets: nothing to proxy to. */
  readonly proxy: UpstreamProxy | undefined;
  /** `servers[].toolAccess`, compiled; undefined when the server has no rules (and then costs nothing). */
  readonly toolAccess: ServerToolAccess | undefined;
}

export interface McpRouteSettings {
  issuer: string;
  /** The gateway's own origin, always allowed as a browser Origin. */
  ownOrigin: string;
  upstreams: UpstreamTargets | undefined;
  pools: UpstreamPools;
  logger: Logger;
  /** The operator's extra names and `prefix*` entries to strip from client requests (`stripClientHeaders`). */
  stripClientHeaders?: readonly string[];
}

/** One route per server, in configuration order. */
export function buildMcpRoutes(servers: readonly ServerConfig[], settings: McpRouteSettings): McpRoute[] {
  const targets = servers.map((server) => targetFor(server, settings.upstreams));
  servers.forEach((server, index) => {
    const target = targets[index];
    if (target && !target.serve) settings.pools.register(target.url, server.upstreamTimeoutMs);
  });
  const guarded = servers.map((server) => protectedServerFor(settings.issuer, server));
  // A header any server receives as identity is a forged claim when a client sends it to any server.
  const dropHeaders = forgeableHeaderFilter(
    guarded.flatMap((server) => [...server.reservedHeaders]),
    settings.stripClientHeaders,
  );
  return servers.map((server, index) => buildMcpRoute(server, guarded[index] as ProtectedServer, targets[index], dropHeaders, settings));
}

function buildMcpRoute(
  server: ServerConfig,
  guarded: ProtectedServer,
  target: UpstreamTarget | undefined,
  dropHeaders: HeaderFilter,
  settings: McpRouteSettings,
): McpRoute {
  const resource = new URL(guarded.resource);
  return {
    server,
    protected: guarded,
    host: server.host === undefined ? undefined : hostKey(server.host, new URL(settings.issuer).protocol),
    path: server.path,
    prefix: `${server.path}/`,
    forwardedHost: resource.host,
    forwardedProto: resource.protocol.slice(0, -1),
    // The server's own origin (another host for host-routed servers) is as trusted as the gateway's.
    origins: createOriginPolicy(settings.ownOrigin, [resource.origin, ...server.allowedOrigins]),
    dropHeaders,
    target,
    // In-process targets (the stdio bridge) are called directly; only network upstreams get a proxy.
    proxy: target && !target.serve ? proxyFor(server, target, settings) : undefined,
    toolAccess: server.toolAccess
      ? new ServerToolAccess(server.toolAccess, { resourceMetadataUrl: guarded.resourceMetadataUrl, scopes: guarded.scopes })
      : undefined,
  };
}

function proxyFor(server: ServerConfig, target: UpstreamTarget, settings: McpRouteSettings): UpstreamProxy {
  return new UpstreamProxy({
    name: server.name,
    url: target.url,
    transport: target.transport,
    routePath: server.path,
    timeoutMs: server.upstreamTimeoutMs,
    bodyIdleTimeoutMs: server.upstreamBodyIdleTimeoutMs,
    maxRequestBytes: server.maxRequestBytes,
    dispatcher: settings.pools.get(target.url),
    logger: settings.logger,
  });
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
  throw new GatewayError(
    ErrorCode.PROXY_UPSTREAM_UNDEFINED,
    `server "${server.name}" has no URL of its own (built-in or stdio); pass it through the upstreams option`,
  );
}

/** Finds the route for a request's Host and path (query already split off). */
export type McpRouteMatcher = (host: string | undefined, path: string) => McpRoute | undefined;

/**
 * Host-routed servers first (on their host only), then the servers reachable on any Host; within
 * each, the longest path first, so `/mcp/admin` wins over `/mcp`. Forward-auth servers are never
 * matched: their traffic does not pass through the gateway.
 */
export function createMcpRouteMatcher(routes: readonly McpRoute[], scheme: string): McpRouteMatcher {
  const byLength = (a: McpRoute, b: McpRoute): number => b.path.length - a.path.length;
  const proxied = routes.filter((route) => route.target !== undefined);
  const anyHost = proxied.filter((route) => route.host === undefined).sort(byLength);
  const byHost = new Map<string, McpRoute[]>();
  for (const route of proxied) {
    if (route.host === undefined) continue;
    byHost.set(route.host, [...(byHost.get(route.host) ?? []), route].sort(byLength));
  }
  return (host, path) => {
    if (byHost.size > 0 && host !== undefined) {
      const list = byHost.get(host) ?? byHost.get(hostKey(host, scheme) ?? '');
      const route = list && firstMatch(list, path);
      if (route) return route;
    }
    return firstMatch(anyHost, path);
  };
}

function firstMatch(list: readonly McpRoute[], path: string): McpRoute | undefined {
  for (const route of list) if (path === route.path || path.startsWith(route.prefix)) return route;
  return undefined;
}

/**
 * Dot segments and encoded slashes could make the upstream resolve a path outside the route's base
 * path (RFC 3986 §5.2.4); such paths are refused rather than normalised.
 */
export function escapesRoute(subPath: string): boolean {
  const lower = subPath.toLowerCase();
  if (lower.includes('%2f') || lower.includes('%5c') || lower.includes('\\')) return true;
  if (!lower.includes('.') && !lower.includes('%2e')) return false;
  for (const segment of lower.replaceAll('%2e', '.').split('/')) if (segment === '.' || segment === '..') return true;
  return false;
}
