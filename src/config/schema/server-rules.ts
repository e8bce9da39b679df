/**
 * Rules on one `servers[]` entry that span several of its keys. Pure functions, so the schema (and
 * with it `config check`) and the code that starts a server apply the same rule.
 *
 * They take data the schema may not have validated yet (see identity-provider-rules.ts), so each
 * guards the types it reads.
 */
import { canonicalizeResource, resourceFor } from '../../core/resource-uri.ts';
import type { RuleProblem } from './identity-provider-rules.ts';

/**
 * `idpToken` must name a hand-over the upstream can actually receive: a header needs an HTTP hop (a
 * URL, or the reverse proxy in front of a forward-auth server); an environment variable needs a
 * per-user stdio process, because one process can hold only one user's token.
 */
export function idpTokenTargetProblems(server: unknown): RuleProblem[] {
  if (!isRecord(server) || !isRecord(server.idpToken) || !isRecord(server.upstream)) return [];
  const { idpToken, upstream } = server;
  const stdio = isRecord(upstream.stdio) ? upstream.stdio : undefined;
  const problems: RuleProblem[] = [];
  // `mode` defaults to shared, so an absent mode is a shared process.
  if (idpToken.env !== undefined && stdio?.mode !== 'per-user') {
    problems.push({ path: ['idpToken', 'env'], message: "needs a stdio upstream with mode: per-user (a shared process cannot hold one user's token)" });
  }
  if (idpToken.header !== undefined && stdio) {
    problems.push({ path: ['idpToken', 'header'], message: 'a stdio server receives the token through idpToken.env, not a header' });
  }
  return problems;
}

/**
 * `toolAccess` needs to read every request body and the list answers, which only a route the gateway
 * proxies itself can do: not a forward-auth server (its traffic bypasses the gateway), and not an
 * HTTP+SSE upstream (its answers arrive on a separate stream, unbound to the request that asked).
 * `scopeDescriptions` must describe scopes the server has, or the consent page would never show them.
 */
export function toolAccessProblems(server: unknown): RuleProblem[] {
  if (!isRecord(server)) return [];
  const problems: RuleProblem[] = [];
  const upstream = isRecord(server.upstream) ? server.upstream : undefined;
  if (isRecord(server.toolAccess) && upstream) {
    if (upstream.forwardAuth === true)
      problems.push({ path: ['toolAccess'], message: 'not available for forward-auth servers: their requests do not pass through the gateway' });
    if (upstream.transport === 'sse')
      problems.push({ path: ['toolAccess'], message: 'not available for an HTTP+SSE (2024-11-05) upstream: use streamable-http' });
  }
  if (isRecord(server.scopeDescriptions)) {
    const known = new Set<unknown>(Array.isArray(server.scopes) ? server.scopes : []);
    const rules = isRecord(server.toolAccess) && Array.isArray(server.toolAccess.rules) ? server.toolAccess.rules : [];
    for (const rule of rules) if (isRecord(rule) && Array.isArray(rule.scopes)) for (const scope of rule.scopes) known.add(scope);
    for (const scope of Object.keys(server.scopeDescriptions)) {
      if (!known.has(scope)) problems.push({ path: ['scopeDescriptions', scope], message: 'is not a scope of this server (`scopes` or a `toolAccess` rule)' });
    }
  }
  return problems;
}

/**
 * The canonical resource URI (token audience, RFC 8707 §2) of a server entry, computed by the same
 * function the gateway uses at run time, or the problem that prevents it. `undefined` when the keys it
 * depends on are missing or already reported by their own checks (a second message would only repeat them).
 */
export function serverResource(issuer: string, server: unknown): { resource: string } | { problem: RuleProblem } | undefined {
  // A path that is no absolute path is reported by its own pattern.
  if (!isRecord(server) || typeof server.path !== 'string' || !server.path.startsWith('/')) return undefined;
  const { path, host, resource } = server;
  if (host !== undefined && typeof host !== 'string') return undefined;
  if (resource !== undefined && (typeof resource !== 'string' || canonicalizeResource(resource) === undefined)) return undefined;
  try {
    return { resource: resourceFor(issuer, { path, host, resource }) };
  } catch {
    return { problem: { path: [resource !== undefined ? 'resource' : host !== undefined ? 'host' : 'path'], message: 'does not form a valid resource URI' } };
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
