/**
 * What forward-auth sends back to the proxy. Only 2xx, 401 and 403 carry decisions: nginx turns every
 * other status into a 500 (which still refuses), Traefik and Caddy relay them.
 */
import type { ServerResponse } from 'node:http';
import type { Logger } from '../observability/logger.ts';
import type { ChallengeParams } from '../resource-server/challenge.ts';
import { bearerChallenge } from '../resource-server/challenge.ts';
import type { GuardGrant, GuardResult, ProtectedServer, ResourceGuard } from '../resource-server/guard.ts';
import type { OriginalRequest } from './original-request.ts';

export interface AnswerContext {
  readonly guard: ResourceGuard;
  readonly logger: Logger;
}

/** The guard's verdict, as the proxy needs it. */
export function answer(context: AnswerContext, res: ServerResponse, server: ProtectedServer, request: OriginalRequest, result: GuardResult): void {
  if (res.destroyed) return;
  if (result.ok) {
    allow(context, res, server, request, result);
    return;
  }
  if (result.kind === 'unavailable') {
    context.logger.info(
      { event: 'forward_auth.denied', server: server.name, reason: 'unavailable', method: request.method, host: request.host, path: request.path },
      'forward-auth: denied',
    );
    // 503: Traefik and Caddy relay it; nginx makes it a 500. Either way the request is refused.
    sendPlain(res, result.status, 'temporarily_unavailable', result.message);
    return;
  }
  deny(context.logger, res, server, request, result.challenge);
}

/** 200, empty body, with the server's identity headers (and its IdP-token header when configured). */
function allow(context: AnswerContext, res: ServerResponse, server: ProtectedServer, request: OriginalRequest, grant: GuardGrant): void {
  const headers: string[] = ['cache-control', 'no-store', 'content-length', '0'];
  context.guard.appendUpstreamHeaders(headers, server, grant);
  if (context.logger.isLevelEnabled('debug')) {
    context.logger.debug(
      {
        event: 'forward_auth.allowed',
        server: server.name,
        sub: grant.token.claims.sub,
        client_id: grant.token.claims.client_id,
        method: request.method,
        path: request.path,
      },
      'forward-auth: allowed',
    );
  }
  res.writeHead(200, headers);
  res.end();
}

/** 401 with the Bearer challenge (RFC 6750 §3, RFC 9728 §5.1), or 403 `insufficient_scope`. */
function deny(logger: Logger, res: ServerResponse, server: ProtectedServer, request: OriginalRequest, challenge: ChallengeParams): void {
  logger.info(
    {
      event: 'forward_auth.denied',
      server: server.name,
      reason: challenge.error ?? 'no_token',
      detail: challenge.errorDescription,
      method: request.method,
      host: request.host,
      path: request.path,
    },
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

/** A CORS preflight carries no credentials: it passes with no identity. */
export function allowPreflight(res: ServerResponse): void {
  res.writeHead(200, { 'cache-control': 'no-store', 'content-length': 0 });
  res.end();
}

export function fail(logger: Logger, res: ServerResponse, error: unknown, server?: string): void {
  logger.error({ err: error, server }, 'forward-auth check failed');
  // Every proxy refuses the original request on a 5xx from its auth service (fails closed).
  if (!res.headersSent) sendPlain(res, 500, 'server_error', 'The authorization check failed.');
  else res.destroy();
}

/** A refusal without a challenge: no token could change the answer. */
export function sendPlain(res: ServerResponse, status: number, error: string, description: string): void {
  const body = JSON.stringify({ error, error_description: description });
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
