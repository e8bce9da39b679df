/** The MCP server and scopes an authorization request asks for, read from oidc-provider's parameters. */
import { OIDC_SCOPES, type ProtectedResource, resolveResource } from '../provider.ts';
import type { InteractionContext } from './context.ts';

export interface RequestedAccess {
  /** The resource indicator as the client sent it (or the default), which keys the grant. */
  resourceIndicator: string;
  server: ProtectedResource;
  resourceScopes: string[];
  oidcScopes: string[];
}

/** Undefined when the request names no single known MCP server (RFC 8707 §2). */
export function requestedAccess(
  ctx: Pick<InteractionContext, 'resources' | 'canonicalizeResource'>,
  params: Record<string, unknown>,
): RequestedAccess | undefined {
  const server = resolveResource(ctx.resources, ctx.canonicalizeResource, params.resource);
  if (!server) return undefined;
  // The grant is keyed by the indicator as the client sent it, or by the default oidc-provider applied.
  const indicator = typeof params.resource === 'string' ? params.resource : server.resource;
  const requested = typeof params.scope === 'string' ? params.scope.split(' ').filter(Boolean) : [];
  return {
    resourceIndicator: indicator,
    server,
    resourceScopes: requested.filter((scope) => server.scopes.includes(scope)),
    oidcScopes: requested.filter((scope) => OIDC_SCOPES.includes(scope)),
  };
}
