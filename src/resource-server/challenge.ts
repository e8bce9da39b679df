/**
 * Bearer challenges (RFC 6750 §3) as MCP clients need them.
 *
 * Every 401 names the Protected Resource Metadata document (`resource_metadata`, RFC 9728 §5.1): Claude
 * Code cannot start its login without it (docs/clients.md). A 403 for missing scope lists every scope the
 * server needs, including those the token already has, so that a client's step-up request asks for the
 * full set (MCP Authorization, "Scope challenge handling").
 */
import type { ServerResponse } from 'node:http';

/** RFC 6750 §3.1 error codes the gateway uses. */
export type BearerErrorCode = 'invalid_request' | 'invalid_token' | 'insufficient_scope';

export interface ChallengeParams {
  resourceMetadataUrl: string;
  /** Scopes needed; omitted from the header when empty. */
  scopes: readonly string[];
  error?: BearerErrorCode;
  /** Public text; must not carry anything secret. */
  errorDescription?: string;
}

/**
 * Builds a `WWW-Authenticate: Bearer …` value.
 *
 * Without `error`: `Bearer resource_metadata="…", scope="…"`. RFC 6750 §3.1 says a request that carried
 * no credentials gets no error code. With `error`: the error (and description) come first, as in the
 * RFC 6750 examples, then `resource_metadata` and `scope`.
 */
export function bearerChallenge(params: ChallengeParams): string {
  const parts: string[] = [];
  if (params.error) {
    parts.push(`error="${params.error}"`);
    // For insufficient_scope the header stays `error, scope, resource_metadata`: clients act on scope,
    // and the description is in the JSON body.
    if (params.errorDescription && params.error !== 'insufficient_scope') {
      parts.push(`error_description="${quotedStringSafe(params.errorDescription)}"`);
    }
  }
  if (params.error === 'insufficient_scope') {
    // RFC 6750 §3.1 / MCP: the scope attribute is what the client needs; keep it next to the error.
    if (params.scopes.length > 0) parts.push(`scope="${params.scopes.join(' ')}"`);
    parts.push(`resource_metadata="${params.resourceMetadataUrl}"`);
  } else {
    parts.push(`resource_metadata="${params.resourceMetadataUrl}"`);
    if (params.scopes.length > 0) parts.push(`scope="${params.scopes.join(' ')}"`);
  }
  return `Bearer ${parts.join(', ')}`;
}

/**
 * RFC 6750 §3: `error_description` is limited to %x20-21 / %x23-5B / %x5D-7E, which also keeps it a
 * valid quoted-string. Anything else becomes a space.
 */
function quotedStringSafe(text: string): string {
  return text.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, ' ');
}

const STATUS: Record<BearerErrorCode, number> = {
  invalid_request: 400,
  invalid_token: 401,
  insufficient_scope: 403,
};

/**
 * Sends a challenge response. Without `error` the status is 401 (no usable credentials). Bodies carry
 * the OAuth error shape `{error, error_description}`; nothing is cached (RFC 6749 §5.1 habit for errors).
 */
export function sendBearerChallenge(res: ServerResponse, params: ChallengeParams, extraHeaders?: Record<string, string>): void {
  const status = params.error ? STATUS[params.error] : 401;
  const body = JSON.stringify({
    error: params.error ?? 'invalid_token',
    error_description: params.errorDescription ?? 'An access token is required.',
  });
  res.writeHead(status, {
    ...extraHeaders,
    'www-authenticate': bearerChallenge(params),
    'content-type': 'application/json',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}
