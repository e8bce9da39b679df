/**
 * A raw OAuth client for assertions the SDK hides: register, build /authorize with PKCE, exchange and
 * refresh codes, with every response kept as it came off the wire.
 */
import { createHash, randomBytes } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import type { Browser } from '../support/browser.ts';
import { approveAndSignIn, type Stack } from './stack.ts';

export interface Registered {
  client_id: string;
  client_secret?: string;
  redirect_uris: string[];
  [key: string]: unknown;
}

export interface TokenResponse {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

export async function register(stack: Stack, body: Record<string, unknown>): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${stack.issuer}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

export async function registerPublicClient(
  stack: Stack,
  redirectUri = 'http://127.0.0.1:5555/callback',
  extra: Record<string, unknown> = {},
): Promise<Registered> {
  const { status, body } = await register(stack, {
    client_name: 'Raw test client',
    redirect_uris: [redirectUri],
    token_endpoint_auth_method: 'none',
    ...extra,
  });
  if (status !== 201) throw new Error(`registration failed: ${status} ${JSON.stringify(body)}`);
  return body as Registered;
}

export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

export function authorizeUrl(stack: Stack, params: Record<string, string | undefined>): URL {
  const url = new URL('/authorize', stack.issuer);
  for (const [name, value] of Object.entries(params)) if (value !== undefined) url.searchParams.set(name, value);
  return url;
}

export async function tokenRequest(stack: Stack, params: Record<string, string>, headers: Record<string, string> = {}): Promise<TokenResponse> {
  const response = await fetch(`${stack.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(params),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown>, headers: response.headers };
}

/** RFC 7009 revocation by a public client. */
export async function revokeToken(stack: Stack, token: string, clientId: string): Promise<Response> {
  return fetch(`${stack.issuer}/revoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token, client_id: clientId }),
  });
}

/**
 * /authorize for a registered client with a fresh S256 PKCE pair, sent to its first redirect URI unless
 * `params` names another; `params` adds or overrides query parameters (undefined leaves one out).
 */
export function pkceAuthorizeUrl(
  stack: Stack,
  client: Pick<Registered, 'client_id' | 'redirect_uris'>,
  params: Record<string, string | undefined> = {},
): { url: URL; verifier: string } {
  const { verifier, challenge } = pkcePair();
  const url = authorizeUrl(stack, {
    response_type: 'code',
    client_id: client.client_id,
    redirect_uri: client.redirect_uris[0],
    code_challenge: challenge,
    code_challenge_method: 'S256',
    ...params,
  });
  return { url, verifier };
}

export interface AuthorizationCodeOptions {
  redirectUri?: string;
  /** null: the client omits `resource` (older clients), undefined: the default server's URL. */
  resource?: string | null;
  scope?: string;
  username?: 'alice' | 'bob';
}

/** A code from a real login (consent, then the IdP) for a registered client, not yet redeemed. */
export async function authorizationCode(
  stack: Stack,
  browser: Browser,
  client: Registered,
  options: AuthorizationCodeOptions = {},
): Promise<{ code: string; verifier: string; redirectUri: string }> {
  const redirectUri = options.redirectUri ?? client.redirect_uris[0]!;
  const state = randomBytes(8).toString('hex');
  const { url, verifier } = pkceAuthorizeUrl(stack, client, {
    redirect_uri: redirectUri,
    state,
    scope: options.scope ?? 'mcp:tools',
    resource: options.resource === null ? undefined : (options.resource ?? stack.mcpUrl()),
  });
  const page = await approveAndSignIn(stack, browser, url, redirectUri, options.username);
  const returned = page.url;
  if (returned.searchParams.get('state') !== state) throw new Error(`state not echoed: ${returned.href}`);
  const code = returned.searchParams.get('code');
  if (!code) throw new Error(`no code in ${returned.href}`);
  return { code, verifier, redirectUri };
}

/** Full authorization code flow for a registered public client; returns the token response. */
export async function authorizeAndExchange(
  stack: Stack,
  browser: Browser,
  client: Registered,
  options: AuthorizationCodeOptions = {},
): Promise<TokenResponse & { code: string }> {
  const { code, verifier, redirectUri } = await authorizationCode(stack, browser, client, options);
  const tokens = await tokenRequest(stack, {
    grant_type: 'authorization_code',
    code,
    redirect_uri: redirectUri,
    code_verifier: verifier,
    client_id: client.client_id,
    ...(options.resource ? { resource: options.resource } : {}),
  });
  return { ...tokens, code };
}

export function inspectAccessToken(token: string) {
  return { header: decodeProtectedHeader(token), claims: decodeJwt(token) };
}

/** A raw JSON-RPC POST to an MCP endpoint (initialize), to look at status and headers directly. */
export async function mcpInitialize(url: string, token?: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...headers,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
    }),
  });
}
