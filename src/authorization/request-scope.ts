/**
 * The scope of an authorization request, made grantable before oidc-provider sees it.
 *
 * RFC 6749 §3.3: when a client omits `scope`, the server "MUST either process the request using a
 * pre-defined default value or fail". MCP clients omit it, send it empty (ChatGPT, reported) or send
 * scopes of other servers; failing them all would break real logins, and oidc-provider refuses a grant
 * with no scope at all. So unknown scopes are dropped, and an empty result becomes the target MCP
 * server's scopes, or `openid` for a server that defines none (any grantable value will do: the access
 * token's audience, not its scope, is what binds it to that server).
 */
import { OIDC_SCOPES, type ProtectedResource } from './provider.ts';

export function grantableScope(requested: string | null, server: ProtectedResource): string {
  const known = new Set([...OIDC_SCOPES, ...server.scopes]);
  const kept = [...new Set((requested ?? '').split(' ').filter((scope) => known.has(scope)))];
  if (kept.some((scope) => scope !== 'offline_access')) return kept.join(' ');
  // Least privilege: the scopes needed to connect, never the optional `toolAccess` ones (docs/policy.md).
  const required = server.requiredScopes ?? server.scopes;
  const defaults = required.length > 0 ? required : ['openid'];
  return [...defaults, ...kept].join(' ');
}
