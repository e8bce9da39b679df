/**
 * The token endpoint's answer, tidied for clients. oidc-provider answers `"scope": ""` when the grant
 * has scopes but the access token holds none: the case of an MCP server that defines no scopes, whose
 * grant carries only `openid` (request-scope.ts). RFC 6749 §3.3 defines scope as one or more tokens,
 * so an empty string is no scope at all, and clients that parse it split it into `[""]`. Omitting
 * `scope` is what §5.1 allows ("OPTIONAL, if identical to the scope requested").
 */
import type { KoaContextWithOIDC } from 'oidc-provider';

/** Koa middleware for oidc-provider (`provider.use`), innermost, so refresh replay stores the tidied answer. */
export async function omitEmptyScope(ctx: KoaContextWithOIDC, next: () => Promise<unknown>): Promise<void> {
  await next();
  if (ctx.oidc?.route !== 'token' || ctx.status !== 200) return;
  const body = ctx.body as Record<string, unknown> | undefined;
  if (body !== null && typeof body === 'object' && body.scope === '') delete body.scope;
}
