/**
 * The scope of an authorization request, made grantable before oidc-provider sees it.
 *
 * RFC 6749 §3.3: when a client omits `scope`, the server "MUST either process the request using a
 * pre-defined default value or fail". MCP clients omit it, send it empty (ChatGPT, reported) or send
 * scopes of other servers; failing them all would break real logins, and oidc-provider refuses a grant
 * with no scope at all. So unknown scopes are dropped, and an empty result becomes the target MCP
 * server's scopes, or `openid` for a server that defines none (any grantable value will do: the access
 * token's audience, not its scope, is what binds it to that server).
 *
 * A request with none of the server's own scopes (`servers[].scopes`, the ones needed to connect) gets
 * them all added: Gemini CLI asks for the authorization server's `scopes_supported` (`openid
 * offline_access profile email`) whatever the server advertises, and a token without the server's
 * scope would only earn 403 insufficient_scope,
 * after which Gemini re-registers, fails and shows the server Disconnected (docs/clients.md).
 */
import { OIDC_SCOPES, type ProtectedResource } from './provider.ts';

export function grantableScope(requested: string | null, server: ProtectedResource): string {
  const known = new Set([...OIDC_SCOPES, ...server.scopes]);
  const kept = [...new Set((requested ?? '').split(' ').filter((scope) => known.has(scope)))];
  // Least privilege: only the scopes needed to connect are added, never the optional `toolAccess` ones
  // (docs/policy.md), which a client obtains through the step-up challenge.
  const required = server.requiredScopes ?? server.scopes;
  if (required.length > 0 && !kept.some((scope) => required.includes(scope))) return [...required, ...kept].join(' ');
  if (kept.some((scope) => scope !== 'offline_access')) return kept.join(' ');
  return ['openid', ...kept].join(' ');
}
