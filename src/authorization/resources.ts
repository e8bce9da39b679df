/** The MCP servers behind the gateway, as the authorization server sees them. */
import type { AccessPolicy } from '../policy/access.ts';

/** An MCP server as the authorization server sees it: an audience with scopes. */
export interface ProtectedResource {
  name: string;
  /** Canonical resource URI, also the token `aud`. */
  resource: string;
  scopes: string[];
  /**
   * The scopes every token for this server carries (`servers[].scopes`), asked for when a client names
   * none; the rest of `scopes` are `toolAccess` scopes, granted only when asked for and approved
   * (docs/policy.md). Absent: all of `scopes`.
   */
  requiredScopes?: string[];
  /** What each scope allows, in the operator's words, for the consent page (`servers[].scopeDescriptions`). */
  scopeDescriptions?: Record<string, string>;
  /** Who may log in to it: the gateway-wide and the server's rule blocks (src/policy/access.ts). Absent: everyone. */
  access?: AccessPolicy;
  /** The server receives the user's IdP token (`servers[].idpToken`): without a live one, refreshing is pointless. */
  requiresIdpToken?: boolean;
}

/**
 * The MCP server a `resource` parameter names (RFC 8707 §2), compared in canonical form. No parameter
 * means the default (first) server. Several values mean undefined: a token is for one MCP server, and
 * the consent page must name exactly the server the token will be for.
 */
export function resolveResource(
  resources: readonly ProtectedResource[],
  canonicalizeResource: (value: string) => string | undefined,
  indicator: unknown,
): ProtectedResource | undefined {
  if (indicator === undefined || indicator === null) return resources[0];
  if (typeof indicator !== 'string') return undefined;
  const canonical = canonicalizeResource(indicator);
  return canonical === undefined ? undefined : resources.find((candidate) => candidate.resource === canonical);
}
