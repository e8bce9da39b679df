/**
 * The HTTP half of a plain OAuth 2 client (RFC 6749), shared by the GitHub and generic OAuth 2
 * providers: the token request with client authentication, a tolerant reader for token responses
 * (JSON, or the form-encoded body GitHub sends by default), JSON API calls with a bearer token, and
 * the mapping of HTTP failures onto the three outcomes an MCP client may learn (IdpLoginError).
 *
 * openid-client / oauth4webapi are not used here on purpose: they insist on JSON token responses and
 * on 4xx for errors, while GitHub answers `200 {"error": ...}` and form-encoded bodies.
 */
import { BodyTooLargeError, readCappedResponse } from '../http/body.ts';
import type { IdpTokens } from './types.ts';
import { IdpLoginError } from './types.ts';

/** Largest response body read from an IdP; anything bigger is not a token response or a user. */
const MAX_BODY_BYTES = 1024 * 1024;

export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'none';

/** A successful token response (RFC 6749 §5.1), plus GitHub's `refresh_token_expires_in`. */
export interface TokenResponse {
  access_token: string;
  token_type?: string;
  expires_in?: number;
  refresh_token?: string;
  refresh_token_expires_in?: number;
  scope?: string;
}

/** An error the token endpoint reported (RFC 6749 §5.2), whatever the HTTP status it came with. */
export interface TokenErrorBody {
  error: string;
  error_description?: string;
  error_uri?: string;
}

export interface TokenRequest {
  fetch: typeof fetch;
  url: string;
  /** Grant parameters (grant_type, code, redirect_uri, code_verifier, refresh_token, ...). */
  params: Record<string, string>;
  clientId: string;
  clientSecret?: string;
  authMethod: ClientAuthMethod;
  /** `GitHub`, `identity provider "x"`: for log details. */
  label: string;
  /**
   * Turns an error the endpoint reported into the login error for it. Returning undefined falls back
   * to the generic mapping (`temporarily_unavailable`/`server_error` pass through, anything else is a
   * `server_error`).
   */
  classify?: (error: TokenErrorBody, detail: string) => IdpLoginError | undefined;
}

/** Extra request headers the caller wants (GitHub's User-Agent). */
export const USER_AGENT = 'mcp-oauth-gateway';

/**
 * POSTs a token request and returns the token response, or throws IdpLoginError. Errors reported
 * with any status (GitHub uses 200) go through `classify`; 429 and 5xx are `temporarily_unavailable`.
 */
export async function requestTokens(request: TokenRequest): Promise<TokenResponse> {
  const body = new URLSearchParams(request.params);
  const headers: Record<string, string> = {
    // GitHub answers form-encoded unless asked for JSON; everyone else ignores or honours it.
    accept: 'application/json',
    'content-type': 'application/x-www-form-urlencoded',
    'user-agent': USER_AGENT,
  };
  if (request.authMethod === 'client_secret_basic') {
    // RFC 6749 §2.3.1: id and secret are form-urlencoded before they are joined and base64-encoded.
    const credentials = `${formEncode(request.clientId)}:${formEncode(request.clientSecret ?? '')}`;
    headers.authorization = `Basic ${Buffer.from(credentials).toString('base64')}`;
  } else {
    body.set('client_id', request.clientId);
    if (request.authMethod === 'client_secret_post' && request.clientSecret) body.set('client_secret', request.clientSecret);
  }

  const endpoint = `${request.label} token endpoint`;
  const response = await send(request.fetch, request.url, { method: 'POST', headers, body: body.toString(), redirect: 'manual' }, endpoint);
  const text = await readBody(response, endpoint);
  const parsed = parseTokenBody(text, response.headers.get('content-type'));

  if (parsed && typeof parsed.error === 'string' && parsed.error !== '') {
    const error: TokenErrorBody = {
      error: parsed.error,
      ...(typeof parsed.error_description === 'string' ? { error_description: parsed.error_description } : {}),
      ...(typeof parsed.error_uri === 'string' ? { error_uri: parsed.error_uri } : {}),
    };
    const detail = `${endpoint} answered ${response.status} error=${error.error}${error.error_description ? ` (${error.error_description})` : ''}`;
    if (isUnavailableStatus(response)) throw unavailable(detail);
    const mapped = request.classify?.(error, detail);
    if (mapped) throw mapped;
    if (error.error === 'temporarily_unavailable' || error.error === 'server_error') throw unavailable(detail);
    throw new IdpLoginError('server_error', 'The identity provider refused the sign-in.', detail);
  }
  if (isUnavailableStatus(response)) throw unavailable(`${endpoint} answered ${response.status}${rateLimitNote(response)}`);
  if (!response.ok) {
    throw new IdpLoginError(
      'server_error',
      'The identity provider refused the sign-in.',
      `${endpoint} answered ${response.status} without an OAuth error: ${snippet(text)}`,
    );
  }
  if (!parsed) {
    throw new IdpLoginError(
      'server_error',
      "The identity provider's answer could not be read.",
      `${endpoint} answered ${response.status} with an unreadable body (${response.headers.get('content-type') ?? 'no content-type'})`,
    );
  }
  return tokenResponseFrom(parsed, endpoint);
}

/**
 * Parses a token endpoint body: JSON, or `application/x-www-form-urlencoded` (GitHub's default). The
 * content type decides when it is one of the two; otherwise the body's shape does. Undefined when it
 * is neither.
 */
export function parseTokenBody(text: string, contentType: string | null): Record<string, unknown> | undefined {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  const trimmed = text.trim();
  const asJson = (): Record<string, unknown> | undefined => {
    try {
      const value: unknown = JSON.parse(trimmed);
      return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
    } catch {
      return undefined;
    }
  };
  const asForm = (): Record<string, unknown> | undefined => {
    if (!/^[^=&\s]+=/.test(trimmed)) return undefined;
    return Object.fromEntries(new URLSearchParams(trimmed));
  };
  if (type === 'application/json' || type.endsWith('+json')) return asJson();
  if (type === 'application/x-www-form-urlencoded') return asForm();
  return trimmed.startsWith('{') ? asJson() : asForm();
}

/** Validates the fields the gateway relies on; numbers may arrive as text from a form-encoded body. */
function tokenResponseFrom(body: Record<string, unknown>, endpoint: string): TokenResponse {
  const accessToken = body.access_token;
  if (typeof accessToken !== 'string' || accessToken === '') {
    throw new IdpLoginError('server_error', 'The identity provider returned no access token.', `${endpoint} answered without access_token`);
  }
  const tokenType = optionalString(body.token_type);
  // RFC 6749 §7.1: the client must understand the token type; the gateway only speaks Bearer (RFC 6750).
  if (tokenType !== undefined && tokenType.toLowerCase() !== 'bearer') {
    throw new IdpLoginError('server_error', 'The identity provider returned an unsupported token.', `${endpoint} answered token_type=${tokenType}, not bearer`);
  }
  const response: TokenResponse = { access_token: accessToken };
  if (tokenType !== undefined) response.token_type = tokenType;
  const refreshToken = optionalString(body.refresh_token);
  if (refreshToken) response.refresh_token = refreshToken;
  const expiresIn = positiveNumber(body.expires_in);
  if (expiresIn !== undefined) response.expires_in = expiresIn;
  const refreshExpiresIn = positiveNumber(body.refresh_token_expires_in);
  if (refreshExpiresIn !== undefined) response.refresh_token_expires_in = refreshExpiresIn;
  const scope = optionalString(body.scope);
  // GitHub separates scopes with commas; RFC 6749 §3.3 with spaces.
  if (scope !== undefined)
    response.scope = scope
      .split(/[\s,]+/)
      .filter(Boolean)
      .join(' ');
  return response;
}

/** The gateway's stored form of a token response. */
export function idpTokensFrom(response: TokenResponse, now = Math.floor(Date.now() / 1000)): IdpTokens {
  const tokens: IdpTokens = { accessToken: response.access_token };
  if (response.refresh_token) tokens.refreshToken = response.refresh_token;
  if (response.expires_in !== undefined) tokens.expiresAt = now + response.expires_in;
  if (response.scope !== undefined) tokens.scope = response.scope;
  return tokens;
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  /** Parsed JSON, or undefined when the body was not JSON. */
  json: unknown;
  text: string;
}

/** GET with a bearer token (RFC 6750 §2.1), reading a JSON answer. Network failures are `temporarily_unavailable`. */
export async function getJson(
  fetchFn: typeof fetch,
  url: string,
  accessToken: string,
  what: string,
  extraHeaders: Record<string, string> = {},
): Promise<ApiResponse> {
  const response = await send(
    fetchFn,
    url,
    {
      method: 'GET',
      headers: { accept: 'application/json', 'user-agent': USER_AGENT, ...extraHeaders, authorization: `Bearer ${accessToken}` },
      // A redirect could carry the bearer token to another host; the API must answer directly.
      redirect: 'manual',
    },
    what,
  );
  const text = await readBody(response, what);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, json, text };
}

/** The login error for a failed API call: rate limits and 5xx are temporary, anything else is not. */
export function apiFailure(response: ApiResponse, what: string, hint = ''): IdpLoginError {
  const message =
    response.json !== null && typeof response.json === 'object' && typeof (response.json as { message?: unknown }).message === 'string'
      ? ` (${(response.json as { message: string }).message})`
      : '';
  const detail = `${what} answered ${response.status}${message}${rateLimitNote(response)}${hint ? `: ${hint}` : ''}`;
  if (isUnavailableStatus(response)) return unavailable(detail);
  return new IdpLoginError('server_error', "The identity provider's user information could not be read.", detail);
}

/** 429, 5xx, or GitHub's primary rate limit (403 with `x-ratelimit-remaining: 0`). */
export function isUnavailableStatus(response: { status: number; headers: Headers }): boolean {
  if (response.status === 429 || response.status >= 500) return true;
  return response.status === 403 && response.headers.get('x-ratelimit-remaining') === '0';
}

function rateLimitNote(response: { status: number; headers: Headers }): string {
  if (response.headers.get('x-ratelimit-remaining') !== '0') return '';
  const reset = Number(response.headers.get('x-ratelimit-reset'));
  return Number.isFinite(reset) && reset > 0 ? ` (rate limit exhausted until ${new Date(reset * 1000).toISOString()})` : ' (rate limit exhausted)';
}

export function unavailable(detail: string, options?: ErrorOptions): IdpLoginError {
  return new IdpLoginError('temporarily_unavailable', 'The identity provider is unavailable.', detail, options);
}

async function send(fetchFn: typeof fetch, url: string, init: RequestInit, what: string): Promise<Response> {
  try {
    return await fetchFn(url, init);
  } catch (error) {
    // fetch rejects with a TypeError for refused/reset connections, DNS and TLS failures, and with
    // an AbortError/TimeoutError when the outbound deadline passes.
    throw unavailable(`${what} request failed: ${describeNetworkError(error)}`, { cause: error });
  }
}

async function readBody(response: Response, what: string): Promise<string> {
  const declared = Number(response.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) {
    await response.body?.cancel();
    throw new IdpLoginError(
      'server_error',
      "The identity provider's answer could not be read.",
      `${what} answered a ${declared}-byte body (limit ${MAX_BODY_BYTES})`,
    );
  }
  try {
    // Capped while reading: a chunked answer has no Content-Length to check first.
    return (await readCappedResponse(response.body, MAX_BODY_BYTES)).toString('utf8');
  } catch (error) {
    if (error instanceof BodyTooLargeError)
      throw new IdpLoginError('server_error', "The identity provider's answer could not be read.", `${what} answered more than ${MAX_BODY_BYTES} bytes`);
    throw unavailable(`${what} response could not be read: ${describeNetworkError(error)}`, { cause: error });
  }
}

function describeNetworkError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause =
    error.cause instanceof Error
      ? ` <- ${error.cause.message}${(error.cause as { code?: unknown }).code ? ` [${String((error.cause as { code?: unknown }).code)}]` : ''}`
      : '';
  return `${error.name}: ${error.message}${cause}`;
}

function formEncode(value: string): string {
  return new URLSearchParams({ v: value }).toString().slice(2);
}

function optionalString(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function positiveNumber(value: unknown): number | undefined {
  const number = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  return typeof number === 'number' && Number.isFinite(number) && number > 0 ? Math.floor(number) : undefined;
}

/** The first 200 characters of a body, on one line, for a log detail. */
function snippet(text: string): string {
  return JSON.stringify(text.slice(0, 200));
}

/** The error an IdP put on the callback (RFC 6749 §4.1.2.1), as a login error. */
export function callbackError(params: URLSearchParams, label: string, explain: (error: string) => string | undefined = () => undefined): IdpLoginError {
  const error = params.get('error') ?? 'unknown';
  const description = params.get('error_description');
  const detail = `${label} callback error=${error}${description ? ` (${description})` : ''}${explain(error) ? `: ${explain(error)}` : ''}`;
  if (['access_denied', 'login_required', 'consent_required', 'interaction_required', 'account_selection_required'].includes(error)) {
    return new IdpLoginError('access_denied', 'The identity provider denied the sign-in.', detail);
  }
  if (error === 'temporarily_unavailable' || error === 'server_error') return unavailable(detail);
  return new IdpLoginError('server_error', 'The identity provider refused the sign-in request.', detail);
}

/** Checks the callback's `state` and returns its `code` (RFC 6749 §4.1.2, RFC 9700 §2.1.1). */
export function codeFromCallback(params: URLSearchParams, expectedState: string, label: string): string {
  if (params.get('state') !== expectedState) {
    throw new IdpLoginError('server_error', 'The sign-in could not be completed.', `${label} callback state does not match the pending login`);
  }
  const code = params.get('code');
  if (!code) throw new IdpLoginError('server_error', 'The sign-in could not be completed.', `${label} callback has neither code nor error`);
  return code;
}
