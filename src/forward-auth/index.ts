/**
 * Forward-auth: the gateway as the authorization check of a reverse proxy the operator already runs
 * (nginx `auth_request`, Traefik ForwardAuth, Caddy `forward_auth`, Envoy HTTP ext_authz). The proxy
 * sends the MCP traffic to the MCP server itself; discovery, login and tokens stay on the gateway.
 *
 * Endpoints (docs/forward-auth.md shows each proxy's configuration):
 * - `/forward-auth/<server name>`: the check for one server, named by the operator. Envoy's
 *   `path_prefix` appends the original path: `/forward-auth/<server name>/<original path>`.
 * - `/forward-auth`: the server is found from the original host and path.
 * Either way the original request (original-request.ts) must fall under that server's resource URI:
 * a token is only ever judged for the server whose URL the client actually called.
 *
 * Answers:
 * - 200, empty body, with the server's identity headers (and its IdP-token header when configured);
 * - 401 with `WWW-Authenticate: Bearer resource_metadata="…", scope="…"` (RFC 6750 §3, RFC 9728 §5.1)
 *   when the token is missing, invalid, expired or for another server; 403 `insufficient_scope`;
 * - 403 without a challenge when the request is not for a forward-auth server, 404 for an unknown
 *   server name: the endpoint is no oracle for hosts it does not protect.
 * Only 2xx, 401 and 403 carry decisions (answers.ts).
 *
 * The token checks are the gateway's own (guard.ts), so a request is judged the same way whether the
 * gateway proxies it or a proxy asks about it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JWK } from 'jose';
import type { ServerConfig } from '../config/schema.ts';
import { ErrorCode, GatewayError } from '../core/errors.ts';
import { issuerFromPublicUrl, PRM_WELL_KNOWN } from '../core/resource-uri.ts';
import type { RequestTarget, RouteHandlers } from '../http/router.ts';
import type { IdpTokenSource } from '../idp/idp-tokens.ts';
import type { Logger } from '../observability/logger.ts';
import type { ProtectedServer, ResourceGuard } from '../resource-server/guard.ts';
import { createResourceGuard, protectedServerFor } from '../resource-server/guard.ts';
import { createTokenVerifier } from '../resource-server/token-verifier.ts';
import type { UserRecord } from '../storage/records.ts';
import { type AnswerContext, allowPreflight, answer, fail, sendPlain } from './answers.ts';
import { ForwardAuthMetadata } from './metadata.ts';
import type { OriginalRequest, ResourceTarget } from './original-request.ts';
import { readOriginalRequest, requestMatchesResource, resourceTarget } from './original-request.ts';

/** The path the proxies call (src/http/routes.ts reserves it). */
export const FORWARD_AUTH_PATH = '/forward-auth';

export interface ForwardAuthOptions {
  /** The authorization server's issuer (the gateway's public URL). */
  issuer: string;
  /** Every configured server; only those with `upstream: { forwardAuth: true }` are answered. */
  servers: readonly ServerConfig[];
  logger: Logger;
  /** The gateway's guard, to share its token cache; by default one is built from the fields below. */
  guard?: ResourceGuard;
  /** Current public signing keys of the authorization server (when no guard is given). */
  publicKeys?: () => JWK[];
  /** Looks a user up by the token's `sub` (when no guard is given). */
  findUser?: (sub: string) => Promise<UserRecord | undefined>;
  /** The user's IdP access token, for servers with `idpToken.header` (when no guard is given). */
  idpTokens?: IdpTokenSource;
  /** Whether a grant was revoked (src/storage/revocation-list.ts), when no guard is given. */
  isRevoked?: (grantId: string) => boolean;
}

export interface ForwardAuth {
  /** The route-table handlers (src/http/routes.ts): the checks and the servers' metadata documents. */
  readonly handlers: Required<Pick<RouteHandlers, 'forwardAuthMetadata' | 'forwardAuthCheck'>>;
}

/** One forward-auth server, prepared once at start-up. */
interface ForwardAuthServer {
  readonly protected: ProtectedServer;
  readonly target: ResourceTarget;
}

/** The forward-auth servers, by the name a check URL gives and by resource (longest path first). */
interface ForwardAuthServers {
  readonly byName: ReadonlyMap<string, ForwardAuthServer>;
  readonly byResource: readonly ForwardAuthServer[];
}

interface CheckContext extends AnswerContext {
  readonly servers: ForwardAuthServers;
}

export function isForwardAuthServer(server: Pick<ServerConfig, 'upstream'>): boolean {
  return 'forwardAuth' in server.upstream;
}

/**
 * URL of the metadata document the challenge names for a forward-auth server: on the gateway's own
 * origin, so the operator's proxy needs no route for it. RFC 9728 §3.3 lets a document fetched through
 * `resource_metadata` live anywhere as long as its `resource` is the URL the client called, which it is.
 */
export function forwardAuthMetadataPath(serverName: string): string {
  return `${PRM_WELL_KNOWN}${FORWARD_AUTH_PATH}/${serverName}`;
}

export function createForwardAuth(options: ForwardAuthOptions): ForwardAuth {
  const issuer = issuerFromPublicUrl(options.issuer);
  const servers = options.servers.filter(isForwardAuthServer);
  const metadata = new ForwardAuthMetadata(issuer, servers, forwardAuthMetadataPath);
  const context: CheckContext = { guard: options.guard ?? ownGuard(options, issuer), logger: options.logger, servers: prepareServers(issuer, servers) };
  return {
    handlers: {
      forwardAuthMetadata(req, res, target) {
        if (!metadata.matches(target.path)) return false;
        metadata.serve(req, res, target.path);
      },
      forwardAuthCheck(req, res, target) {
        try {
          check(context, req, res, target);
        } catch (error) {
          fail(context.logger, res, error);
        }
      },
    },
  };
}

function prepareServers(issuer: string, servers: readonly ServerConfig[]): ForwardAuthServers {
  const origin = new URL(issuer).origin;
  const byName = new Map<string, ForwardAuthServer>();
  for (const server of servers) {
    const prepared: ProtectedServer = { ...protectedServerFor(issuer, server), resourceMetadataUrl: origin + forwardAuthMetadataPath(server.name) };
    byName.set(server.name, { protected: prepared, target: resourceTarget(prepared.resource) });
  }
  // Longest resource path first, so `/github/admin` wins over `/github` on the same host.
  const byResource = [...byName.values()].sort((a, b) => b.target.path.length - a.target.path.length);
  return { byName, byResource };
}

/** One check: which server, which original request, then the guard's verdict. */
function check(context: CheckContext, req: IncomingMessage, res: ServerResponse, target: RequestTarget): void {
  const found = checkedRequest(context, req, res, target);
  if (found === undefined) return;
  const { server, request } = found;
  // A CORS preflight carries no credentials (Fetch standard, CORS-preflight request): let it reach the
  // MCP server or the proxy's own CORS handling, with no identity.
  if (request.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined && req.headers.origin !== undefined) {
    if (context.logger.isLevelEnabled('debug'))
      context.logger.debug(
        { event: 'forward_auth.allowed', server: server.name, reason: 'cors_preflight', path: request.path },
        'forward-auth: CORS preflight let through',
      );
    allowPreflight(res);
    return;
  }
  const result = context.guard.check(server, req.headers.authorization, request.query);
  if (!(result instanceof Promise)) {
    answer(context, res, server, request, result);
    return;
  }
  result.then(
    (settled) => answer(context, res, server, request, settled),
    (error: unknown) => fail(context.logger, res, error, server.name),
  );
}

/**
 * The server and the original request a check is about, or undefined once refused: `rest` (after
 * `/forward-auth/`) is `<name>[/<original path>]`, or empty for a server found by host and path.
 */
function checkedRequest(
  context: CheckContext,
  req: IncomingMessage,
  res: ServerResponse,
  target: RequestTarget,
): { server: ProtectedServer; request: OriginalRequest } | undefined {
  const rest = target.params.rest ?? '';
  const slash = rest.indexOf('/');
  const name = slash === -1 ? rest : rest.slice(0, slash);
  const named = rest === '' ? undefined : context.servers.byName.get(name);
  if (rest !== '' && named === undefined) {
    context.logger.info(
      { event: 'forward_auth.denied', reason: 'unknown_server', server: name.slice(0, 64) },
      'forward-auth: no forward-auth server of that name',
    );
    sendPlain(res, 404, 'not_found', 'No forward-auth server of that name.');
    return undefined;
  }
  const original = readOriginalRequest(req.headers, req.method ?? 'GET', slash === -1 ? '' : rest.slice(slash) + target.search);
  if (!original.ok) {
    context.logger.warn(
      { event: 'forward_auth.denied', reason: original.reason, detail: original.detail, server: named?.protected.name },
      'forward-auth: the proxy did not describe the request it is checking',
    );
    sendPlain(res, 403, 'access_denied', 'The proxy did not describe the original request.');
    return undefined;
  }
  const request = original.request;
  const server = named ?? context.servers.byResource.find((candidate) => requestMatchesResource(request, candidate.target));
  if (server === undefined || !requestMatchesResource(request, server.target)) {
    // A token is judged only for the server whose URL the client called: a `/forward-auth/github`
    // check about a request to another host or path is refused, whatever the token.
    context.logger.info(
      { event: 'forward_auth.denied', reason: 'not_a_forward_auth_resource', server: named?.protected.name, host: request.host, path: request.path },
      'forward-auth: the request is not for a forward-auth server',
    );
    sendPlain(res, 403, 'access_denied', 'This request is not protected by the gateway.');
    return undefined;
  }
  return { server: server.protected, request };
}

function ownGuard(options: ForwardAuthOptions, issuer: string): ResourceGuard {
  if (!options.publicKeys || !options.findUser) {
    throw new GatewayError(ErrorCode.FORWARD_AUTH_SETUP, 'createForwardAuth needs either a guard or publicKeys and findUser');
  }
  return createResourceGuard({
    verifier: createTokenVerifier({ issuer, publicKeys: options.publicKeys, isRevoked: options.isRevoked }),
    findUser: options.findUser,
    idpTokens: options.idpTokens,
    logger: options.logger,
  });
}
