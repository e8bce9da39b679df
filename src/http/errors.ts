/**
 * The OAuth error family (RFC 6749 §5.2, RFC 6750 §3.1). `description` is public and goes on the wire;
 * `detail` is private and goes to logs only. Storage that cannot be reached is `temporarily_unavailable`
 * (503 with Retry-After); anything else that is not an OAuthError becomes `server_error` with nothing
 * internal on the wire.
 */
import type { ServerResponse } from 'node:http';
import { ErrorCode, hasErrorCode } from '../core/errors.ts';

/** Seconds a client is asked to wait when storage is unavailable (a Redis restart takes about that long). */
export const STORAGE_RETRY_AFTER_SECONDS = 5;

/** The answer while storage cannot be reached: RFC 6749 §4.1.2.1 `temporarily_unavailable`, never a 500. */
export const STORAGE_UNAVAILABLE_BODY = {
  error: 'temporarily_unavailable',
  error_description: 'The gateway cannot reach its storage right now; try again shortly.',
} as const;

export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'access_denied'
  | 'server_error'
  | 'temporarily_unavailable'
  | 'invalid_token'
  | 'insufficient_scope'
  | 'invalid_target'
  | 'invalid_client_metadata'
  | 'invalid_redirect_uri';

export class OAuthError extends Error {
  readonly error: OAuthErrorCode;
  readonly status: number;
  readonly description: string;
  readonly detail?: string;
  constructor(error: OAuthErrorCode, description: string, options: { status?: number; detail?: string; cause?: unknown } = {}) {
    super(description, { cause: options.cause });
    this.name = 'OAuthError';
    this.error = error;
    this.status = options.status ?? 400;
    this.description = description;
    this.detail = options.detail;
  }
}

/** Writes a JSON body with the headers every token and error response needs (RFC 6749 §5.1). */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    // A JSON answer must never be sniffed into something a browser renders.
    'x-content-type-options': 'nosniff',
    'content-length': Buffer.byteLength(payload),
    ...headers,
  });
  res.end(payload);
}

export function sendOAuthError(res: ServerResponse, error: unknown): void {
  if (error instanceof OAuthError) {
    sendJson(res, error.status, { error: error.error, error_description: error.description });
    return;
  }
  if (hasErrorCode(error, ErrorCode.STORAGE_UNAVAILABLE)) {
    sendJson(res, 503, STORAGE_UNAVAILABLE_BODY, { 'retry-after': String(STORAGE_RETRY_AFTER_SECONDS) });
    return;
  }
  sendJson(res, 500, { error: 'server_error', error_description: 'The gateway could not complete the request.' });
}
