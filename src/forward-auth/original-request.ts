/**
 * What a reverse proxy asks the forward-auth endpoint about: the ORIGINAL request (host, path, method),
 * read from the headers each proxy uses, and whether that request belongs to a server's resource.
 *
 * Where each proxy puts the original request:
 * - Traefik ForwardAuth: `X-Forwarded-Method`, `X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Forwarded-Uri`.
 * - Caddy `forward_auth`: `X-Forwarded-Method`, `X-Forwarded-Uri`, `X-Forwarded-Host` (its reverse_proxy defaults).
 * - nginx `auth_request`: only what the operator configures (docs/forward-auth.md sets the Traefik names;
 *   `X-Original-URI` / `X-Original-Host` / ingress-nginx's `X-Original-URL` are read as well).
 * - Envoy HTTP ext_authz: the original path appended to the service's `path_prefix`, and the original
 *   `Host` (`:authority`).
 *
 * Security rules, because a wrong answer here lets one server's token open another server:
 * - Every source that is present must agree. A client can add `X-Forwarded-Uri` to its own request and
 *   an nginx that sets only `X-Original-URI` passes it on; refusing disagreement closes that hole instead
 *   of trusting whichever header happens to win.
 * - Dot segments, encoded slashes and backslashes are refused, not normalised: nginx routes on the
 *   normalised path but `$request_uri` is raw, so `/github/../admin/mcp` must never count as `/github`
 *   (RFC 3986 §5.2.4; the same rule the gateway applies to its own routes).
 * - A list in a host header (`a, b`) is refused: which entry the proxy meant cannot be known.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** The request the proxy is deciding about. */
export interface OriginalRequest {
  /** Lowercase host, with a port only when it is not the scheme's default. */
  host: string;
  /** Path without query, as sent (percent-encoding untouched). */
  path: string;
  /** Query without '?', '' when none: a token there is refused (RFC 6750 §2.3, RFC 9700 §2.4.2). */
  query: string;
  /** Upper-case method, when the proxy said (or the method of the check request itself). */
  method: string;
}

export type OriginalRequestResult =
  | { ok: true; request: OriginalRequest }
  | { ok: false; reason: 'missing_original_request' | 'conflicting_original_request' | 'invalid_original_request'; detail: string };

/** The parts of a resource URI that a request must match. */
export interface ResourceTarget {
  /** `http:` or `https:`, used only to drop the default port from a forwarded host. */
  protocol: string;
  /** Lowercase host[:port], default port dropped (WHATWG URL form). */
  host: string;
  /** Path without trailing slash; '' for a resource at the root. */
  path: string;
}

export function resourceTarget(resource: string): ResourceTarget {
  const url = new URL(resource);
  return { protocol: url.protocol, host: url.host, path: url.pathname.replace(/\/+$/, '') };
}

type Refusal = Extract<OriginalRequestResult, { ok: false }>;
/** One step of reading the original request: its value, or why the request is refused. */
type Step<T> = { ok: true; value: T } | Refusal;

/**
 * Reads the original request from the check request's headers.
 *
 * @param pathRest The part of the check request's path after `/forward-auth/<server>` (Envoy appends the
 *   original path there), with its query; '' when there is none.
 */
export function readOriginalRequest(headers: IncomingHttpHeaders, checkMethod: string, pathRest: string): OriginalRequestResult {
  const url = originalUrl(headers);
  if (!url.ok) return url;
  const target = originalTarget(headers, url.value, pathRest);
  if (!target.ok) return target;
  const host = originalHost(headers, url.value);
  if (!host.ok) return host;
  const forwardedMethod = single(headers['x-forwarded-method']) ?? single(headers['x-original-method']);
  const method = (forwardedMethod ?? checkMethod).toUpperCase();
  if (!/^[A-Z]+$/.test(method)) return { ok: false, reason: 'invalid_original_request', detail: 'the original method is not a method token' };
  return { ok: true, request: { host: host.value, path: target.value.path, query: target.value.query, method } };
}

/** ingress-nginx's `X-Original-URL`, when sent: it must be an absolute http(s) URL. */
function originalUrl(headers: IncomingHttpHeaders): Step<URL | undefined> {
  const value = single(headers['x-original-url']);
  if (value === undefined) return { ok: true, value: undefined };
  const url = URL.parse(value);
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    return { ok: false, reason: 'invalid_original_request', detail: 'X-Original-URL is not an absolute http(s) URL' };
  }
  return { ok: true, value: url };
}

/** The original path (every source agreeing, no dot segments) and the first query any source gave. */
function originalTarget(headers: IncomingHttpHeaders, url: URL | undefined, pathRest: string): Step<{ path: string; query: string }> {
  const paths: Array<[source: string, value: string]> = [];
  let query = '';
  for (const [source, value] of [
    ['X-Forwarded-Uri', single(headers['x-forwarded-uri'])],
    ['X-Original-URI', single(headers['x-original-uri'])],
    ['X-Original-URL', url === undefined ? undefined : url.pathname + url.search],
    ['check path', pathRest === '' ? undefined : pathRest],
  ] as const) {
    if (value === undefined) continue;
    paths.push([source, pathOf(value)]);
    if (query === '') query = queryOf(value);
  }
  if (paths.length === 0) {
    return { ok: false, reason: 'missing_original_request', detail: 'no original URI (send X-Forwarded-Uri, X-Original-URI or X-Original-URL)' };
  }
  const path = agreed(paths);
  if (!path.ok) return path;
  if (!path.value.startsWith('/') || /[\s\\]/.test(path.value) || escapesPath(path.value)) {
    return {
      ok: false,
      reason: 'invalid_original_request',
      detail: 'the original path is not a plain absolute path (dot segments, encoded slashes or whitespace)',
    };
  }
  return { ok: true, value: { path: path.value, query } };
}

/** The original host: every source agreeing, a single host[:port]. */
function originalHost(headers: IncomingHttpHeaders, url: URL | undefined): Step<string> {
  const hosts: Array<[source: string, value: string]> = [];
  for (const [source, value] of [
    ['X-Forwarded-Host', single(headers['x-forwarded-host'])],
    ['X-Original-Host', single(headers['x-original-host'])],
    ['X-Original-URL', url?.host],
  ] as const) {
    if (value !== undefined) hosts.push([source, value.trim().toLowerCase()]);
  }
  // Envoy (and a same-origin nginx with `proxy_set_header Host $http_host`) keep the original Host.
  if (hosts.length === 0 && headers.host !== undefined) hosts.push(['Host', headers.host.trim().toLowerCase()]);
  if (hosts.length === 0) return { ok: false, reason: 'missing_original_request', detail: 'no original host (send X-Forwarded-Host)' };
  const host = agreed(hosts);
  if (host.ok && !/^(?:[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::\d{1,5})?$/.test(host.value)) {
    return { ok: false, reason: 'invalid_original_request', detail: 'the original host is not a single host[:port]' };
  }
  return host;
}

/** The one value every source gave (the first source is named when another disagrees). */
function agreed(values: ReadonlyArray<readonly [source: string, value: string]>): Step<string> {
  const [firstSource, first] = values[0]!;
  for (const [source, value] of values) {
    if (value !== first) return { ok: false, reason: 'conflicting_original_request', detail: `${source} disagrees with ${firstSource}` };
  }
  return { ok: true, value: first };
}

/**
 * True when the original request is for this resource: same host (default port ignored) and a path
 * equal to the resource path or below it (`/github` covers `/github` and `/github/x`, not `/githubx`).
 */
export function requestMatchesResource(request: OriginalRequest, target: ResourceTarget): boolean {
  if (withoutDefaultPort(request.host, target.protocol) !== target.host) return false;
  if (target.path === '') return true;
  return request.path === target.path || request.path === `${target.path}/` || request.path.startsWith(`${target.path}/`);
}

function withoutDefaultPort(host: string, protocol: string): string {
  if (protocol === 'https:' && host.endsWith(':443')) return host.slice(0, -4);
  if (protocol === 'http:' && host.endsWith(':80')) return host.slice(0, -3);
  return host;
}

/** A header a proxy sets once; node joins repeated custom headers with ', ', which counts as absent-but-broken. */
function single(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(', ') : value;
}

function queryOf(uri: string): string {
  const q = uri.indexOf('?');
  return q === -1 ? '' : uri.slice(q + 1);
}

function pathOf(uri: string): string {
  const q = uri.indexOf('?');
  return q === -1 ? uri : uri.slice(0, q);
}

/** Dot segments, literal or percent-encoded, and encoded slashes or backslashes (RFC 3986 §5.2.4). */
function escapesPath(path: string): boolean {
  const lower = path.toLowerCase();
  if (lower.includes('%2f') || lower.includes('%5c')) return true;
  if (!lower.includes('.') && !lower.includes('%2e')) return false;
  for (const segment of lower.replaceAll('%2e', '.').split('/')) if (segment === '.' || segment === '..') return true;
  return false;
}
