/**
 * Forward-auth: the gateway as the authorization check of a reverse proxy the operator already runs
 * (nginx `auth_request`, Traefik ForwardAuth, Caddy `forward_auth`, Envoy HTTP ext_authz). The proxy
 * sends the MCP traffic to the MCP server itself; discovery, login and tokens stay on the gateway.
 *
 * Endpoints (docs/forward-auth.md shows each proxy's configuration):
 * - `/forward-auth/<server name>`: the check for one server, named by the operator. Envoy's
 *   `path_prefix` appends the original path: `/forward-auth/<server name>/<original path>`.
 * - `/forward-auth`: the server is found from the original host and path.
 * Either way the original request (forward-auth-request.ts) must fall under that server's resource URI:
 * a token is only ever judged for the server whose URL the client actually called.
 *
 * Answers:
 * - 200, empty body, with the server's identity headers (and its IdP-token header when configured);
 * - 401 with `WWW-Authenticate: Bearer resource_metadata="…", scope="…"` (RFC 6750 §3, RFC 9728 §5.1)
 *   when the token is missing, invalid, expired or for another server; 403 `insufficient_scope`;
 * - 403 without a challenge when the request is not for a forward-auth server, 404 for an unknown
 *   server name: the endpoint is no oracle for hosts it does not protect.
 * Only 2xx, 401 and 403 carry decisions: nginx turns every other status into a 500 (which still refuses).
 *
 * The token checks are the gateway's own (guard.ts), so a request is judged the same way whether the
 * gateway proxies it or a proxy asks about it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JWK } from 'jose';
import type { ServerConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { UserRecord } from '../storage/records.ts';
import type { IdpTokenSource } from '../idp/idp-tokens.ts';
import { bearerChallenge } from '../resource-server/challenge.ts';
import type { ChallengeParams } from '../resource-server/challenge.ts';
import { createResourceGuard, protectedServerFor } from '../resource-server/guard.ts';
import type { GuardGrant, GuardResult, ProtectedServer, ResourceGuard } from '../resource-server/guard.ts';
import { ForwardAuthMetadata } from './metadata.ts';
import { readOriginalRequest, requestMatchesResource, resourceTarget } from './original-request.ts';
import type { OriginalRequest, ResourceTarget } from './original-request.ts';
import { issuerFromPublicUrl, PRM_WELL_KNOWN } from '../core/resource-uri.ts';
import { createTokenVerifier } from '../resource-server/token-verifier.ts';

/** The path the proxies call. MCP server routes must not use it. */
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
}

export interface ForwardAuth {
  /**
   * Answers a check under `/forward-auth`, or the metadata document of a forward-auth server, and
   * returns true; returns false, having touched nothing, for any other path.
   */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
}

/** One forward-auth server, prepared once at start-up. */
interface ForwardAuthServer {
  readonly protected: ProtectedServer;
  readonly target: ResourceTarget;
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
  const origin = new URL(issuer).origin;
  const logger = options.logger;
  const guard = options.guard ?? ownGuard(options, issuer);
  const servers = options.servers.filter(isForwardAuthServer);
  const metadata = new ForwardAuthMetadata(issuer, servers, forwardAuthMetadataPath);
  const byName = new Map<string, ForwardAuthServer>();
  for (const server of servers) {
    const base = protectedServerFor(issuer, server);
    const prepared: ProtectedServer = { ...base, resourceMetadataUrl: origin + forwardAuthMetadataPath(server.name) };
    byName.set(server.name, { protected: prepared, target: resourceTarget(prepared.resource) });
  }
  // Longest resource path first, so `/github/admin` wins over `/github` on the same host.
  const byResource = [...byName.values()].sort((a, b) => b.target.path.length - a.target.path.length);
  const metadataPrefix = `${PRM_WELL_KNOWN}${FORWARD_AUTH_PATH}/`;

  function handle(req: IncomingMessage, res: ServerResponse): boolean {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (path.startsWith(metadataPrefix)) {
      if (!metadata.matches(path)) return false;
      metadata.serve(req, res, path);
      return true;
    }
    if (!path.startsWith(FORWARD_AUTH_PATH) || (path.length > FORWARD_AUTH_PATH.length && path.charCodeAt(FORWARD_AUTH_PATH.length) !== 0x2f)) return false;
    try {
      check(req, res, path, q === -1 ? '' : url.slice(q));
    } catch (error) {
      fail(res, error);
    }
    return true;
  }

  function check(req: IncomingMessage, res: ServerResponse, path: string, query: string): void {
    // `/forward-auth/<name>[/<original path>]` or `/forward-auth`.
    let named: ForwardAuthServer | undefined;
    let rest = '';
    if (path.length > FORWARD_AUTH_PATH.length + 1) {
      const tail = path.slice(FORWARD_AUTH_PATH.length + 1);
      const slash = tail.indexOf('/');
      const name = slash === -1 ? tail : tail.slice(0, slash);
      named = byName.get(name);
      if (named === undefined) {
        logger.info({ event: 'forward_auth.denied', reason: 'unknown_server', server: name.slice(0, 64) }, 'forward-auth: no forward-auth server of that name');
        sendPlain(res, 404, 'not_found', 'No forward-auth server of that name.');
        return;
      }
      if (slash !== -1) rest = tail.slice(slash) + query;
    }

    const original = readOriginalRequest(req.headers, req.method ?? 'GET', rest);
    if (!original.ok) {
      logger.warn(
        { event: 'forward_auth.denied', reason: original.reason, detail: original.detail, server: named?.protected.name },
        'forward-auth: the proxy did not describe the request it is checking',
      );
      sendPlain(res, 403, 'access_denied', 'The proxy did not describe the original request.');
      return;
    }
    const request = original.request;
    const target = named ?? byResource.find((candidate) => requestMatchesResource(request, candidate.target));
    if (target === undefined || !requestMatchesResource(request, target.target)) {
      // A token is judged only for the server whose URL the client called: a `/forward-auth/github`
      // check about a request to another host or path is refused, whatever the token.
      logger.info(
        { event: 'forward_auth.denied', reason: 'not_a_forward_auth_resource', server: named?.protected.name, host: request.host, path: request.path },
        'forward-auth: the request is not for a forward-auth server',
      );
      sendPlain(res, 403, 'access_denied', 'This request is not protected by the gateway.');
      return;
    }
    const server = target.protected;

    // A CORS preflight carries no credentials (Fetch standard, CORS-preflight request): let it reach the
    // MCP server or the proxy's own CORS handling, with no identity.
    if (request.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined && req.headers.origin !== undefined) {
      if (logger.isLevelEnabled('debug')) logger.debug({ event: 'forward_auth.allowed', server: server.name, reason: 'cors_preflight', path: request.path }, 'forward-auth: CORS preflight let through');
      res.writeHead(200, { 'cache-control': 'no-store', 'content-length': 0 });
      res.end();
      return;
    }

    const result = guard.check(server, req.headers.authorization, request.query);
    if (!(result instanceof Promise)) {
      answer(res, server, request, result);
      return;
    }
    result.then(
      (settled) => answer(res, server, request, settled),
      (error: unknown) => fail(res, error, server.name),
    );
  }

  function answer(res: ServerResponse, server: ProtectedServer, request: OriginalRequest, result: GuardResult): void {
    if (res.destroyed) return;
    if (result.ok) {
      allow(res, server, request, result);
      return;
    }
    if (result.kind === 'unavailable') {
      logger.info({ event: 'forward_auth.denied', server: server.name, reason: 'unavailable', method: request.method, host: request.host, path: request.path }, 'forward-auth: denied');
      // 503: Traefik and Caddy relay it; nginx makes it a 500. Either way the request is refused.
      sendPlain(res, result.status, 'temporarily_unavailable', result.message);
      return;
    }
    deny(res, server, request, result.challenge);
  }

  function allow(res: ServerResponse, server: ProtectedServer, request: OriginalRequest, grant: GuardGrant): void {
    const headers: string[] = ['cache-control', 'no-store', 'content-length', '0'];
    guard.appendUpstreamHeaders(headers, server, grant);
    if (logger.isLevelEnabled('debug')) {
      logger.debug(
        { event: 'forward_auth.allowed', server: server.name, sub: grant.token.claims.sub, client_id: grant.token.claims.client_id, method: request.method, path: request.path },
        'forward-auth: allowed',
      );
    }
    res.writeHead(200, headers);
    res.end();
  }

  function deny(res: ServerResponse, server: ProtectedServer, request: OriginalRequest, challenge: ChallengeParams): void {
    logger.info(
      { event: 'forward_auth.denied', server: server.name, reason: challenge.error ?? 'no_token', detail: challenge.errorDescription, method: request.method, host: request.host, path: request.path },
      'forward-auth: denied',
    );
    // Proxies relay only 401 and 403 as decisions (nginx makes anything else a 500), so a token in the
    // query string, which RFC 6750 §3.1 answers with 400 invalid_request, is a 401 here, still named
    // invalid_request; a client then retries with the header.
    const status = challenge.error === 'insufficient_scope' ? 403 : 401;
    const body = JSON.stringify({ error: challenge.error ?? 'invalid_token', error_description: challenge.errorDescription ?? 'An access token is required.' });
    res.writeHead(status, {
      'www-authenticate': bearerChallenge(challenge),
      'content-type': 'application/json',
      'cache-control': 'no-store',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  }

  function fail(res: ServerResponse, error: unknown, server?: string): void {
    logger.error({ err: error, server }, 'forward-auth check failed');
    // Every proxy refuses the original request on a 5xx from its auth service (fails closed).
    if (!res.headersSent) sendPlain(res, 500, 'server_error', 'The authorization check failed.');
    else res.destroy();
  }

  return { handle };
}

function ownGuard(options: ForwardAuthOptions, issuer: string): ResourceGuard {
  if (!options.publicKeys || !options.findUser) {
    throw Object.assign(new Error('createForwardAuth needs either a guard or publicKeys and findUser'), { code: 'ERR_GATEWAY_FORWARD_AUTH' });
  }
  return createResourceGuard({
    verifier: createTokenVerifier({ issuer, publicKeys: options.publicKeys }),
    findUser: options.findUser,
    idpTokens: options.idpTokens,
    logger: options.logger,
  });
}

function sendPlain(res: ServerResponse, status: number, error: string, description: string): void {
  const body = JSON.stringify({ error, error_description: description });
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
