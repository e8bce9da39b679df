/**
 * Canonical resource identifiers for the MCP servers behind the gateway.
 *
 * The same string must come out on both sides of the trust boundary: the authorization server binds a
 * token's `aud` to it (RFC 8707 §2) and the gateway compares `aud` with it, byte for byte. MCP
 * (Authorization, "Canonical Server URI") defines the form: lowercase scheme and host, no fragment, no
 * trailing slash. Clients disagree on the last point (the TypeScript SDK sends `https://host/`), so every
 * `resource` value a client sends goes through `canonicalizeResource` before it is compared or stored.
 */
import { ErrorCode, GatewayError } from './errors.ts';

/**
 * Returns the canonical form of a resource indicator, or `undefined` when it cannot be one.
 *
 * Invalid (RFC 8707 §2): not an absolute URL, a scheme other than http/https, userinfo, or a fragment.
 * Normalised: scheme and host lowercased and the default port dropped (WHATWG URL parsing does both),
 * trailing slashes removed from the path, so `HTTPS://Host.example/mcp/` becomes
 * `https://host.example/mcp` and `https://host.example/` becomes `https://host.example`.
 * A query is kept as sent: RFC 8707 discourages it but does not forbid it.
 */
export function canonicalizeResource(input: string): string | undefined {
  if (typeof input !== 'string' || input.length === 0 || input.includes('#')) return undefined;
  const url = URL.parse(input);
  if (!url) return undefined;
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return undefined;
  if (url.username || url.password || !url.hostname) return undefined;
  let path = url.pathname;
  let end = path.length;
  while (end > 0 && path.charCodeAt(end - 1) === 0x2f /* '/' */) end--;
  path = path.slice(0, end);
  return `${url.protocol}//${url.host}${path}${url.search}`;
}

/**
 * The issuer string as the gateway publishes it: the configured public URL without a trailing slash.
 * Claude.ai refuses an issuer that differs from the discovered one even by a trailing slash
 * (docs/clients.md), so the authorization side must derive its issuer the same way.
 */
export function issuerFromPublicUrl(publicUrl: string): string {
  return publicUrl.endsWith('/') ? publicUrl.slice(0, -1) : publicUrl;
}

/** The gateway's origin (lowercase scheme and host, no default port), derived from the issuer. */
export function gatewayOrigin(issuer: string): string {
  const url = URL.parse(issuer);
  if (!url) throw new GatewayError(ErrorCode.RESOURCE_ISSUER_INVALID, `issuer "${issuer}" is not an absolute URL`);
  return url.origin;
}

/** Canonical resource URI for a route path on the gateway: the gateway origin plus the path. */
export function resourceUriFor(issuer: string, path: string): string {
  const resource = canonicalizeResource(gatewayOrigin(issuer) + path);
  if (!resource) throw new GatewayError(ErrorCode.RESOURCE_URI_INVALID, `server path "${path}" does not form a valid resource URI`);
  return resource;
}

/**
 * The parts of a server's configuration that decide its resource URI and route. Structural on purpose:
 * core/ is the ground floor that config/ builds on, so it names no configuration type.
 */
export interface ResourceLocator {
  path: string;
  host?: string | undefined;
  resource?: string | undefined;
}

/**
 * Canonical resource URI of one MCP server: its PRM `resource`, the `aud` of its tokens, and the value
 * the authorization server binds (RFC 8707 §2). The single place this is decided:
 * - `resource` when configured (forward-auth behind another origin);
 * - `<publicUrl scheme>://<host><path>` for a host-routed server;
 * - `publicUrl + path` otherwise.
 */
export function resourceFor(issuer: string, server: ResourceLocator): string {
  if (server.resource !== undefined) {
    const resource = canonicalizeResource(server.resource);
    if (!resource) throw new GatewayError(ErrorCode.RESOURCE_URI_INVALID, `resource "${server.resource}" is not a valid resource URI`);
    return resource;
  }
  if (server.host !== undefined) {
    const scheme = URL.parse(issuer)?.protocol ?? 'https:';
    const resource = canonicalizeResource(`${scheme}//${server.host}${server.path}`);
    if (!resource) throw new GatewayError(ErrorCode.RESOURCE_URI_INVALID, `host "${server.host}" and path "${server.path}" do not form a valid resource URI`);
    return resource;
  }
  return resourceUriFor(issuer, server.path);
}

/** RFC 9728 §3.1: the metadata URL inserts the well-known segment between the origin and the path. */
export const PRM_WELL_KNOWN = '/.well-known/oauth-protected-resource';

/**
 * URL of a server's Protected Resource Metadata document, as named in `resource_metadata` (RFC 9728
 * §5.1): the well-known segment inserted into the server's resource URI (RFC 9728 §3.1), so the
 * document's `resource` equals the URL it was fetched from minus the segment (§3.3).
 */
export function protectedResourceMetadataUrl(issuer: string, server: ResourceLocator): string {
  return protectedResourceMetadataUrlOf(resourceFor(issuer, server));
}

/** The path-inserted metadata URL of a canonical resource URI. */
export function protectedResourceMetadataUrlOf(resource: string): string {
  const url = new URL(resource);
  const path = url.pathname === '/' ? '' : url.pathname;
  return `${url.origin}${PRM_WELL_KNOWN}${path}${url.search}`;
}

/**
 * A `Host` header value in comparable form for a given scheme: lowercase, default port dropped
 * (`Tools.Example:443` over https is `tools.example`). `undefined` for a value that is no host.
 */
export function hostKey(host: string, scheme: string): string | undefined {
  const url = URL.parse(`${scheme}//${host}`);
  if (!url || url.host === '' || url.username || url.password || url.pathname !== '/' || url.search || url.hash) return undefined;
  return url.host;
}
