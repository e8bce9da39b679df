/**
 * The official MCP TypeScript SDK client, set up the way real MCP clients register with the gateway:
 * Dynamic Client Registration (like Claude Code, Cursor, VS Code), a Client ID Metadata Document
 * (CIMD, `clientMetadataUrl`), or pre-registered credentials. Everything the SDK stores goes into
 * memory and stays readable for assertions; the browser step is left to the test.
 *
 * @example
 * const provider = new TestOAuthClientProvider({ mode: 'dcr', clientName: 'E2E client' });
 * const client = await connectWithLogin({
 *   mcpUrl: `${gateway.url}/mcp/demo`,
 *   provider,
 *   fetch: createTrustingFetch(ca.caPem),
 *   login: async (authorizationUrl) => {
 *     let page = await browser.goto(authorizationUrl);                       // gateway consent
 *     page = await browser.submitForm(page, { button: 'Allow' });             // → IdP login
 *     page = await idp.signIn(browser, page, 'alice', { stopAt: provider.redirectUrl });
 *     return page.url;                                                        // redirect_uri?code=…
 *   },
 * });
 * const tools = await client.listTools();
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { OAuthClientProvider, OAuthDiscoveryState } from '@modelcontextprotocol/sdk/client/auth.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';

export interface TestOAuthClientOptions {
  /**
   * `dcr`: registers at /register with `clientMetadata`. `cimd`: presents `clientMetadataUrl` as its
   * client_id (the SDK falls back to DCR when the server does not advertise CIMD: assert `clientId`).
   * `preregistered`: uses `clientInformation` as given.
   */
  mode: 'dcr' | 'cimd' | 'preregistered';
  /** Default `http://127.0.0.1:<random port>/callback` (never listened on: the browser stops there). */
  redirectUrl?: string;
  clientName?: string;
  /** Required for `cimd`: the https URL of the document (see cimd-host.ts). */
  clientMetadataUrl?: string;
  /** Required for `preregistered`. */
  clientInformation?: OAuthClientInformationMixed;
  /** Scope for the client metadata (the SDK prefers the 401's or the PRM's scope). */
  scope?: string;
  /** Extra or replaced client metadata fields (e.g. `application_type: 'native'`). */
  metadata?: Partial<OAuthClientMetadata>;
  /**
   * false: the client keeps no refresh token, like a client that does not store one. The SDK 1.x
   * answers a 403 `insufficient_scope` by refreshing first when it holds one, which cannot widen the
   * scope (RFC 6749 §6), and then gives up (typescript-sdk issue #2255); without one it runs the
   * step-up authorization. Default true.
   */
  keepRefreshTokens?: boolean;
}

export class TestOAuthClientProvider implements OAuthClientProvider {
  readonly mode: TestOAuthClientOptions['mode'];
  readonly clientMetadataUrl?: string;
  readonly #redirectUrl: string;
  readonly #metadata: OAuthClientMetadata;
  readonly #keepRefreshTokens: boolean;
  #clientInformation: OAuthClientInformationMixed | undefined;
  #tokens: OAuthTokens | undefined;
  #codeVerifier: string | undefined;
  #discoveryState: OAuthDiscoveryState | undefined;
  /** The last URL the SDK asked the user agent to open (drive it with the Browser). */
  authorizationUrl: URL | undefined;
  /** Every authorization URL, oldest first (re-authorization, step-up). */
  readonly authorizationUrls: URL[] = [];
  /** Every `state` handed to the SDK, oldest first; the last one must come back on the redirect. */
  readonly states: string[] = [];
  /** Every `invalidateCredentials` call's scope, in order. */
  readonly invalidations: string[] = [];
  /** Every token set the SDK saved (initial, then each refresh), oldest first. */
  readonly savedTokens: OAuthTokens[] = [];

  constructor(options: TestOAuthClientOptions) {
    this.mode = options.mode;
    this.#keepRefreshTokens = options.keepRefreshTokens ?? true;
    this.#redirectUrl = options.redirectUrl ?? `http://127.0.0.1:${randomInt(20_000, 60_000)}/callback`;
    if (options.mode === 'cimd') {
      if (!options.clientMetadataUrl) throw new TypeError('TestOAuthClientProvider: mode cimd needs clientMetadataUrl');
      this.clientMetadataUrl = options.clientMetadataUrl;
    }
    if (options.mode === 'preregistered') {
      if (!options.clientInformation) throw new TypeError('TestOAuthClientProvider: mode preregistered needs clientInformation');
      this.#clientInformation = options.clientInformation;
    }
    this.#metadata = {
      client_name: options.clientName ?? 'MCP SDK test client',
      redirect_uris: [this.#redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      ...(options.scope ? { scope: options.scope } : {}),
      ...options.metadata,
    };
  }

  get redirectUrl(): string {
    return this.#redirectUrl;
  }

  get clientMetadata(): OAuthClientMetadata {
    return this.#metadata;
  }

  /** The client_id in use (DCR-issued, the CIMD URL, or the pre-registered one), once known. */
  get clientId(): string | undefined {
    return this.#clientInformation?.client_id;
  }

  state(): string {
    const state = randomBytes(16).toString('base64url');
    this.states.push(state);
    return state;
  }

  clientInformation(): OAuthClientInformationMixed | undefined {
    return this.#clientInformation;
  }

  saveClientInformation(clientInformation: OAuthClientInformationMixed): void {
    // Stored unchanged, `issuer` stamp included, as the SDK asks.
    this.#clientInformation = clientInformation;
  }

  tokens(): OAuthTokens | undefined {
    return this.#tokens;
  }

  saveTokens(tokens: OAuthTokens): void {
    if (!this.#keepRefreshTokens && tokens.refresh_token !== undefined) {
      const { refresh_token: _dropped, ...kept } = tokens;
      this.#tokens = kept;
      this.savedTokens.push(tokens);
      return;
    }
    this.#tokens = tokens;
    this.savedTokens.push(tokens);
  }

  redirectToAuthorization(authorizationUrl: URL): void {
    this.authorizationUrl = authorizationUrl;
    this.authorizationUrls.push(authorizationUrl);
  }

  saveCodeVerifier(codeVerifier: string): void {
    this.#codeVerifier = codeVerifier;
  }

  codeVerifier(): string {
    if (!this.#codeVerifier) throw new Error('TestOAuthClientProvider: no code verifier saved');
    return this.#codeVerifier;
  }

  invalidateCredentials(scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery'): void {
    this.invalidations.push(scope);
    if (scope === 'all' || scope === 'client') {
      // Pre-registered credentials cannot be re-created; keep them so the failure stays visible.
      if (this.mode !== 'preregistered') this.#clientInformation = undefined;
    }
    if (scope === 'all' || scope === 'tokens') this.#tokens = undefined;
    if (scope === 'all' || scope === 'verifier') this.#codeVerifier = undefined;
    if (scope === 'all' || scope === 'discovery') this.#discoveryState = undefined;
  }

  saveDiscoveryState(state: OAuthDiscoveryState): void {
    this.#discoveryState = state;
  }

  discoveryState(): OAuthDiscoveryState | undefined {
    return this.#discoveryState;
  }

  /** Replaces the stored tokens (e.g. to simulate an expired or tampered access token). */
  setTokens(tokens: OAuthTokens | undefined): void {
    this.#tokens = tokens;
  }
}

/** The authorization server redirected back with `error=…` instead of a code. */
export class AuthorizationRedirectError extends Error {
  readonly error: string;
  readonly errorDescription: string | undefined;
  readonly redirect: URL;
  constructor(redirect: URL) {
    const error = redirect.searchParams.get('error') ?? 'unknown';
    const description = redirect.searchParams.get('error_description') ?? undefined;
    super(`authorization failed: ${error}${description ? ` (${description})` : ''}`);
    this.name = 'AuthorizationRedirectError';
    this.error = error;
    this.errorDescription = description;
    this.redirect = redirect;
  }
}

export interface ConnectWithLoginOptions {
  mcpUrl: string | URL;
  provider: TestOAuthClientProvider;
  /** Drives the browser from the authorization URL to the client's redirect URI; returns that URL (with `code`). */
  login: (authorizationUrl: URL) => Promise<URL | string>;
  /** Fetch for the SDK (for https: one that trusts the test CA, see `createTrustingFetch`). */
  fetch?: typeof fetch;
  clientInfo?: { name: string; version: string };
  /**
   * Check the redirect like a careful client: `state` echoed, and RFC 9207 `iss` equal to the
   * authorization server's issuer (required when its metadata advertises
   * `authorization_response_iss_parameter_supported`). Default true.
   */
  checkRedirect?: boolean;
}

/**
 * Connects an SDK `Client` to an MCP server behind the gateway, logging in when it answers 401:
 * connect → UnauthorizedError → `login(authorizationUrl)` → `transport.finishAuth(code)` → connect again
 * with a new transport. With tokens already in `provider` (or a refresh token that still works) there is
 * no login. Throws `AuthorizationRedirectError` when the redirect carries `error`.
 */
export async function connectWithLogin(options: ConnectWithLoginOptions): Promise<Client> {
  const url = new URL(options.mcpUrl);
  const clientInfo = options.clientInfo ?? { name: 'mcp-oauth-gateway-tests', version: '0.0.0' };
  const newTransport = () =>
    new StreamableHTTPClientTransport(url, {
      authProvider: options.provider,
      ...(options.fetch ? { fetch: options.fetch } : {}),
    });

  const firstTransport = newTransport();
  const first = new Client(clientInfo);
  try {
    await first.connect(firstTransport);
    return first;
  } catch (error) {
    if (!(error instanceof UnauthorizedError)) throw error;
  }

  const authorizationUrl = options.provider.authorizationUrl;
  if (!authorizationUrl) throw new Error('connectWithLogin: the SDK raised UnauthorizedError without asking for a login');
  const redirect = new URL(await options.login(authorizationUrl));
  if (options.checkRedirect ?? true) checkRedirect(redirect, options.provider);
  if (redirect.searchParams.has('error')) throw new AuthorizationRedirectError(redirect);
  const code = redirect.searchParams.get('code');
  if (!code) throw new Error(`connectWithLogin: no code in the redirect ${redirect.href}`);
  await firstTransport.finishAuth(code);
  await firstTransport.close();

  const client = new Client(clientInfo);
  await client.connect(newTransport());
  return client;
}

function checkRedirect(redirect: URL, provider: TestOAuthClientProvider): void {
  const expected = new URL(provider.redirectUrl);
  if (redirect.origin !== expected.origin || redirect.pathname !== expected.pathname) {
    throw new Error(`connectWithLogin: login ended at ${redirect.href}, not at the redirect URI ${provider.redirectUrl}`);
  }
  const state = provider.states.at(-1);
  if (state !== undefined && redirect.searchParams.get('state') !== state) {
    throw new Error(`connectWithLogin: state mismatch (sent ${state}, got ${redirect.searchParams.get('state')})`);
  }
  const metadata = provider.discoveryState()?.authorizationServerMetadata;
  const iss = redirect.searchParams.get('iss');
  if (metadata && iss !== null && iss !== metadata.issuer) {
    throw new Error(`connectWithLogin: iss ${iss} is not the authorization server's issuer ${metadata.issuer}`);
  }
  if (metadata && iss === null && (metadata as { authorization_response_iss_parameter_supported?: boolean }).authorization_response_iss_parameter_supported) {
    throw new Error('connectWithLogin: the authorization server advertises RFC 9207 but sent no iss');
  }
}
