/**
 * Request headers a client may never send to an MCP server: the names upstreams (and the frameworks
 * and proxies in front of them) commonly read as "who is calling". An upstream that trusts one of them
 * would take a client's claim for the gateway's word, whether or not this server is configured to
 * receive it: a client with a valid token could otherwise send `x-user-groups: admins` to a server
 * that sets no groups header, or `remote-user` to one whose framework reads it.
 *
 * Stripped from every proxied request (src/proxy/http-proxy.ts), before the gateway adds its own
 * identity headers (identity-headers.ts):
 * - the built-in family below (oauth2-proxy, Authelia, Apache/nginx `REMOTE_USER` conventions, Azure
 *   App Service, Google IAP, Cloudflare Access, AWS ALB, Pomerium, the gateway's own prefix);
 * - every identity or IdP-token header configured on ANY server (a name one server receives is an
 *   identity claim for all of them);
 * - the operator's `stripClientHeaders` (exact names, or prefixes ending in `*`).
 * `Authorization`, `Cookie` and the forwarding headers (`Forwarded`, `X-Forwarded-*`, `X-Real-IP`) are
 * dropped by the proxy itself.
 *
 * The filter is built once at start-up; a request pays one set lookup per header, plus a few prefix
 * comparisons for the rare names that start like a listed prefix.
 */

/** Exact names (lowercase). */
const IDENTITY_NAMES = [
  'remote-user',
  'remote-email',
  'remote-groups',
  'remote-name',
  'x-remote-user',
  'x-remote-email',
  'x-remote-groups',
  'x-email',
  'x-groups',
  'x-preferred-username',
  'x-auth-user',
  'x-authenticated-user',
  'x-authenticated-userid',
  'x-id-token',
  'x-access-token',
];

/** Prefixes (lowercase); a name starting with one is stripped. */
const IDENTITY_PREFIXES = [
  'x-user', // x-user, x-user-id, x-user-email, x-user-groups, x-userinfo …
  'x-auth-request-', // oauth2-proxy
  'x-forwarded-', // x-forwarded-user/-email/-groups/-preferred-username (also dropped as forwarding headers)
  'x-webauth-', // Authelia, webauth modules
  'x-ms-client-principal', // Azure App Service authentication
  'x-ms-token-', // Azure App Service token store
  'x-goog-authenticated-user-', // Google IAP
  'x-goog-iap-', // Google IAP JWT assertion
  'cf-access-', // Cloudflare Access
  'x-amzn-oidc-', // AWS ALB authentication
  'x-pomerium-', // Pomerium
  'x-mcp-gateway-', // the gateway's own names (the stdio bridge's headers live here)
];

/** Answers whether a request header (name lowercase, as Node gives it) is stripped. */
export interface HeaderFilter {
  has(name: string): boolean;
}

/**
 * The filter for the built-in family, the `configured` names (every server's identity and IdP-token
 * headers) and the operator's `extra` entries (`name`, or `prefix*`). Names are compared lowercase.
 */
export function forgeableHeaderFilter(configured: Iterable<string>, extra: readonly string[] = []): HeaderFilter {
  const names = new Set(IDENTITY_NAMES);
  const prefixes = [...IDENTITY_PREFIXES];
  for (const name of configured) names.add(name.toLowerCase());
  for (const entry of extra) {
    const lower = entry.trim().toLowerCase();
    if (lower.endsWith('*')) prefixes.push(lower.slice(0, -1));
    else if (lower !== '') names.add(lower);
  }
  // Prefixes by their first and third characters (`x-u`, `cf-`): most header names (accept,
  // content-type, mcp-*, x-request-id) meet none, and the rest one or two. Shorter prefixes are
  // compared against every name.
  const byHead = new Map<number, string[]>();
  const short: string[] = [];
  for (const prefix of prefixes) {
    if (prefix.length < 3) {
      if (prefix !== '') short.push(prefix);
      continue;
    }
    const head = headKey(prefix);
    byHead.set(head, [...(byHead.get(head) ?? []), prefix]);
  }
  return {
    has(name) {
      if (names.has(name)) return true;
      const candidates = byHead.get(headKey(name));
      if (candidates !== undefined) for (const prefix of candidates) if (name.startsWith(prefix)) return true;
      for (const prefix of short) if (name.startsWith(prefix)) return true;
      return false;
    },
  };
}

function headKey(name: string): number {
  return name.charCodeAt(0) * 65536 + name.charCodeAt(2);
}
