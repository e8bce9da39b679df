/** The MCP server and scopes an authorization request asks for, read from oidc-provider's parameters. */
import { OIDC_SCOPES, type ProtectedResource, resolveResource } from '../provider.ts';
import type { InteractionContext } from './context.ts';

export interface RequestedAccess {
  /** The resource indicator as the client sent it (or the default), which keys the grant. */
  resourceIndicator: string;
  server: ProtectedResource;
  resourceScopes: string[];
  oidcScopes: string[];
  /** Requested optional (`toolAccess`) scopes the person unticked on the consent page: recorded as rejected on the grant. */
  declinedScopes: string[];
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
    declinedScopes: [],
  };
}

/** The requested scopes a person may decline: those not needed to connect (`toolAccess` scopes). */
export function optionalScopes(access: RequestedAccess): string[] {
  const required = access.server.requiredScopes ?? access.server.scopes;
  return access.resourceScopes.filter((scope) => !required.includes(scope));
}

/**
 * The access narrowed to what the person approved: every required scope, and the optional scopes in
 * `approved`. The rest are declined, and the grant records them as rejected so oidc-provider does not
 * ask again for this authorization (RFC 6749 §3.3: the issued scope may be narrower than requested).
 */
export function narrowToApproved(access: RequestedAccess, approved: ReadonlySet<string>): RequestedAccess {
  const declined = optionalScopes(access).filter((scope) => !approved.has(scope));
  if (declined.length === 0) return access;
  return { ...access, resourceScopes: access.resourceScopes.filter((scope) => !declined.includes(scope)), declinedScopes: declined };
}
