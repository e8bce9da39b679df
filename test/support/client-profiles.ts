/**
 * What each real MCP client sends, as data: its registration (DCR body or CIMD document), the redirect
 * URI it registers and the one it actually uses, how it discovers the authorization server, whether and
 * how it sends `resource`, what it puts in `scope`, and how it authenticates at the token endpoint.
 * Sources: docs/clients.md and the clients' public issue trackers (each "reported" fact is a
 * third-party report; the tests here are what makes it a checked fact for this gateway).
 *
 * Hosting substitution: CIMD documents keep the real content (name, redirect URIs, grant types) but are
 * served by test/support/cimd-host.ts over https on loopback, since claude.ai or vscode.dev cannot be
 * reached from a test; their `client_id` is therefore the loopback URL, and `realClientId` records the
 * URL the real client presents.
 *
 * @example
 * for (const profile of CLIENT_PROFILES) test(profile.name, () => runProfile(stack, profile));
 */

/** Where a client looks for metadata, in its order; it stops at the first 200. */
export type DiscoveryStep =
  /** An unauthenticated MCP request; the 401's `resource_metadata` names the PRM (RFC 9728 §5.1). */
  | 'challenge'
  /** PRM at `/.well-known/oauth-protected-resource/<mcp path>` (RFC 9728 §3.1, path inserted). */
  | 'prm-path'
  /** PRM at the root `/.well-known/oauth-protected-resource`. */
  | 'prm-root'
  /** RFC 8414 metadata of the issuer PRM named (`/.well-known/oauth-authorization-server`). */
  | 'rfc8414'
  /** OIDC discovery of that issuer (`/.well-known/openid-configuration`). */
  | 'oidc'
  /** The MCP URL taken as an issuer with a path: `/.well-known/oauth-authorization-server/mcp`. */
  | 'rfc8414-path-inserted'
  /** `/.well-known/openid-configuration/mcp`. */
  | 'oidc-path-inserted'
  /** `/mcp/.well-known/openid-configuration` (path appended, OIDC Discovery §4). */
  | 'oidc-path-appended'
  /**
   * No metadata used: `/authorize`, `/token`, `/register` at the MCP server's origin (2025-03-26
   * fallback; Claude.ai does this when path-aware discovery fails).
   */
  | 'root-endpoints';

/**
 * How `resource` (RFC 8707) is written: `exact` is the canonical MCP URL, `trailing-slash` adds `/`
 * (what `new URL()` serialisation gives for an origin-only URL), `uppercase` upper-cases scheme and
 * host, `absent` omits it.
 */
export type ResourceForm = 'exact' | 'trailing-slash' | 'uppercase' | 'absent';

/**
 * `prm`: the scopes PRM advertises (or the 401's `scope`); `empty`: `scope=` with no value (ChatGPT,
 * reported); `absent`: no scope parameter; `offline_access`: only `offline_access`; `prm+offline_access`:
 * both.
 */
export type ScopeBehaviour = 'prm' | 'empty' | 'absent' | 'offline_access' | 'prm+offline_access';

export type TokenAuth = 'none' | 'client_secret_basic' | 'client_secret_post';

export interface DcrRegistration {
  kind: 'dcr';
  /** The RFC 7591 body the client POSTs (`{port}` in a redirect URI is filled in at run time). */
  body: Record<string, unknown>;
}

export interface CimdRegistration {
  kind: 'cimd';
  /** The URL the real client presents as its client_id. */
  realClientId: string;
  /** The document's content as published (its `client_id` becomes the loopback URL). */
  document: Record<string, unknown>;
}

export interface ClientProfile {
  /** Test name: the client and, where a client has several ways, which one. */
  name: string;
  registration: DcrRegistration | CimdRegistration;
  /**
   * The redirect URI the client uses on /authorize. `{port}` is a port chosen at run time: the client
   * listens on a port it picks (possibly not the one registered, RFC 8252 §7.3).
   */
  redirectUri: string;
  /** A word on the port behaviour, for the docs and failure messages. */
  portBehaviour: string;
  discovery: DiscoveryStep[];
  /** `resource` on the authorization request, the code exchange and the refresh. */
  resource: { authorize: ResourceForm; token: ResourceForm; refresh: ResourceForm };
  scope: ScopeBehaviour;
  /** Used when the registration response does not name a method (never, with this gateway). */
  tokenAuth: TokenAuth;
  /** Extra /authorize parameters (e.g. the SDK's `prompt=consent` with offline_access). */
  authorizeExtras?: Record<string, string>;
  /** A browser-based client: every request carries this `Origin`, and it needs CORS everywhere. */
  browserOrigin?: string;
  /** Extra notes for docs/clients.md. */
  notes?: string;
}

const STANDARD_DISCOVERY: DiscoveryStep[] = ['challenge', 'prm-path', 'prm-root', 'rfc8414', 'oidc'];

/** How every Codex version here registers (DCR on a random loopback port); they differ in discovery and `resource`. */
const CODEX_DCR: Pick<ClientProfile, 'registration' | 'redirectUri' | 'portBehaviour'> = {
  registration: {
    kind: 'dcr',
    body: {
      client_name: 'Codex',
      redirect_uris: ['http://127.0.0.1:{port}/callback'],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    },
  },
  redirectUri: 'http://127.0.0.1:{port}/callback',
  portBehaviour: 'random port, registered with that port',
};

/** VS Code's registration metadata: the same in its DCR body and its CIMD document. */
export const VSCODE_METADATA = {
  client_name: 'Visual Studio Code',
  application_type: 'native',
  redirect_uris: ['https://insiders.vscode.dev/redirect', 'https://vscode.dev/redirect', 'http://127.0.0.1/', 'http://127.0.0.1:33418/'],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'none',
};

/** Cursor's DCR body: three redirect URIs in one request, and rejecting any one fails it (reported). */
export const CURSOR_METADATA = {
  client_name: 'Cursor',
  redirect_uris: ['cursor://anysphere.cursor-mcp/oauth/callback', 'https://www.cursor.com/agents/mcp/oauth/callback', 'http://localhost:8787/callback'],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'none',
};

export const CLIENT_PROFILES: ClientProfile[] = [
  {
    name: 'Claude.ai (CIMD)',
    registration: {
      kind: 'cimd',
      realClientId: 'https://claude.ai/oauth/mcp-oauth-client-metadata',
      document: {
        client_name: 'Claude',
        client_uri: 'https://claude.ai',
        redirect_uris: ['https://claude.ai/api/mcp/auth_callback', 'https://claude.com/api/mcp/auth_callback'],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      },
    },
    redirectUri: 'https://claude.ai/api/mcp/auth_callback',
    portBehaviour: "https callback in Anthropic's cloud, fixed",
    discovery: STANDARD_DISCOVERY,
    resource: { authorize: 'exact', token: 'exact', refresh: 'exact' },
    scope: 'prm',
    tokenAuth: 'none',
    notes: 'Uses CIMD when the AS advertises `client_id_metadata_document_supported` and lists `none`; refuses any issuer mismatch.',
  },
  {
    name: 'Claude.ai (DCR on every connection)',
    registration: {
      kind: 'dcr',
      body: {
        client_name: 'Claude',
        redirect_uris: ['https://claude.ai/api/mcp/auth_callback'],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
        scope: 'mcp:tools',
      },
    },
    redirectUri: 'https://claude.ai/api/mcp/auth_callback',
    portBehaviour: 'https callback, fixed',
    discovery: STANDARD_DISCOVERY,
    resource: { authorize: 'exact', token: 'exact', refresh: 'exact' },
    scope: 'prm',
    tokenAuth: 'none',
  },
  {
    name: 'Claude.ai (path-aware discovery failed: root /authorize /token /register)',
    registration: {
      kind: 'dcr',
      body: {
        client_name: 'Claude',
        redirect_uris: ['https://claude.ai/api/mcp/auth_callback'],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      },
    },
    redirectUri: 'https://claude.ai/api/mcp/auth_callback',
    portBehaviour: 'https callback, fixed',
    discovery: ['root-endpoints'],
    resource: { authorize: 'absent', token: 'absent', refresh: 'absent' },
    scope: 'absent',
    tokenAuth: 'none',
    notes: 'Invents the endpoints on the MCP origin without metadata; without `resource` the token is for the first MCP server.',
  },
  {
    name: 'Claude Code (CIMD, portless loopback in the document)',
    registration: {
      kind: 'cimd',
      realClientId: 'https://claude.ai/oauth/claude-code-client-metadata',
      document: {
        client_name: 'Claude Code',
        redirect_uris: ['http://localhost/callback', 'http://127.0.0.1/callback'],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      },
    },
    redirectUri: 'http://localhost:{port}/callback',
    portBehaviour: 'document lists portless http://localhost/callback; listens on 3118 or a random port',
    discovery: STANDARD_DISCOVERY,
    resource: { authorize: 'exact', token: 'exact', refresh: 'exact' },
    scope: 'prm',
    tokenAuth: 'none',
    notes: 'Fails without `resource_metadata` in the 401; cannot use https loopback.',
  },
  {
    name: 'Claude Code (DCR, as 2.1.332 sends it)',
    registration: {
      kind: 'dcr',
      body: {
        client_name: 'Claude Code (tools)',
        redirect_uris: ['http://localhost:{port}/callback'],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      },
    },
    redirectUri: 'http://localhost:{port}/callback',
    portBehaviour: 'random port, registered with that port',
    discovery: STANDARD_DISCOVERY,
    resource: { authorize: 'exact', token: 'exact', refresh: 'exact' },
    // Observed with the real program (test/e2e/real-clients.test.ts): the PRM scopes plus offline_access.
    scope: 'prm+offline_access',
    tokenAuth: 'none',
  },
  {
    name: 'ChatGPT (DCR, empty scope, resource with a trailing slash)',
    registration: {
      kind: 'dcr',
      // No token_endpoint_auth_method: RFC 7591 §2 default client_secret_basic, and ChatGPT uses
      // what the registration response names.
      body: {
        client_name: 'ChatGPT',
        redirect_uris: ['https://chatgpt.com/connector_platform_oauth_redirect'],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
      },
    },
    redirectUri: 'https://chatgpt.com/connector_platform_oauth_redirect',
    portBehaviour: 'https callback, fixed',
    discovery: STANDARD_DISCOVERY,
    resource: { authorize: 'trailing-slash', token: 'trailing-slash', refresh: 'trailing-slash' },
    scope: 'empty',
    tokenAuth: 'client_secret_basic',
    notes: 'Expects `resource` echoed through the flow; may send `scope=`.',
  },
  {
    name: 'ChatGPT (CIMD without token_endpoint_auth_method)',
    registration: {
      kind: 'cimd',
      realClientId: 'https://chatgpt.com/oauth/connector/client.json',
      document: {
        client_name: 'ChatGPT',
        redirect_uris: ['https://chatgpt.com/connector/oauth/cb-0123456789'],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
      },
    },
    redirectUri: 'https://chatgpt.com/connector/oauth/cb-0123456789',
    portBehaviour: 'https callback, fixed',
    discovery: STANDARD_DISCOVERY,
    resource: { authorize: 'exact', token: 'exact', refresh: 'exact' },
    scope: 'empty',
    tokenAuth: 'none',
    notes: 'A CIMD document without `token_endpoint_auth_method` is a public client (`none`).',
  },
  {
    // Observed with the real 0.171.0 (test/e2e/real-clients.test.ts, gateway CIMD off): `resource` on
    // /authorize and the code exchange, the PRM scopes plus offline_access. Its refresh was not
    // observed (no refresh happened); taken to send `resource` as on the code exchange.
    name: 'Codex 0.171 (DCR, resource, PRM scopes plus offline_access)',
    ...CODEX_DCR,
    discovery: STANDARD_DISCOVERY,
    resource: { authorize: 'exact', token: 'exact', refresh: 'exact' },
    scope: 'prm+offline_access',
    tokenAuth: 'none',
    notes: 'With CIMD advertised its client_id is https://chatgpt.com/oauth/codex/client.json.',
  },
  {
    name: 'Codex (older: DCR, MCP URL probed as an issuer, no resource)',
    ...CODEX_DCR,
    discovery: ['challenge', 'prm-path', 'rfc8414-path-inserted', 'oidc-path-inserted', 'oidc-path-appended', 'rfc8414'],
    resource: { authorize: 'absent', token: 'absent', refresh: 'absent' },
    scope: 'absent',
    tokenAuth: 'none',
  },
  {
    name: 'VS Code (DCR, port 33418 busy, uppercase resource on every request)',
    registration: {
      kind: 'dcr',
      body: VSCODE_METADATA,
    },
    redirectUri: 'http://127.0.0.1:{port}/',
    portBehaviour: '33418, or a random port when it is busy',
    discovery: STANDARD_DISCOVERY,
    resource: { authorize: 'uppercase', token: 'uppercase', refresh: 'uppercase' },
    scope: 'prm+offline_access',
    tokenAuth: 'none',
    notes: 'Sends `resource` on authorize, token and refresh.',
  },
  {
    name: 'VS Code (CIMD, https redirect)',
    registration: {
      kind: 'cimd',
      realClientId: 'https://vscode.dev/oauth/client-metadata.json',
      document: VSCODE_METADATA,
    },
    redirectUri: 'https://vscode.dev/redirect',
    portBehaviour: 'https redirect page that hands the code to the desktop app',
    discovery: STANDARD_DISCOVERY,
    resource: { authorize: 'exact', token: 'exact', refresh: 'exact' },
    scope: 'prm',
    tokenAuth: 'none',
  },
  {
    name: 'Cursor (three redirect URIs in one registration, cursor:// used)',
    registration: {
      kind: 'dcr',
      body: CURSOR_METADATA,
    },
    redirectUri: 'cursor://anysphere.cursor-mcp/oauth/callback',
    portBehaviour: 'private-use scheme; the loopback URI is for its agents',
    discovery: STANDARD_DISCOVERY,
    resource: { authorize: 'exact', token: 'exact', refresh: 'absent' },
    scope: 'absent',
    tokenAuth: 'none',
    notes: 'Rejecting any one redirect URI fails the whole registration (reported).',
  },
  {
    name: 'MCP Inspector (browser, cross-origin from localhost:6274)',
    registration: {
      kind: 'dcr',
      body: {
        client_name: 'MCP Inspector',
        redirect_uris: ['http://localhost:6274/oauth/callback', 'http://localhost:6274/oauth/callback/debug'],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      },
    },
    redirectUri: 'http://localhost:6274/oauth/callback',
    portBehaviour: 'fixed 6274 (v1 web UI)',
    discovery: STANDARD_DISCOVERY,
    resource: { authorize: 'exact', token: 'exact', refresh: 'exact' },
    scope: 'prm',
    tokenAuth: 'none',
    browserOrigin: 'http://localhost:6274',
    notes:
      'Runs in the browser: needs CORS on discovery, /register, /token and the MCP route, and `WWW-Authenticate` and `Mcp-Session-Id` exposed. The MCP server must list its origin in `allowedOrigins`.',
  },
  {
    name: 'mcp-remote (raw, as its DCR and requests look on the wire)',
    registration: {
      kind: 'dcr',
      body: {
        client_name: 'MCP CLI Proxy',
        client_uri: 'https://github.com/modelcontextprotocol/mcp-cli',
        software_id: '2e6dc280-f3c3-4e01-99a7-8181dbd1d23d',
        software_version: '0.15.1',
        redirect_uris: ['http://localhost:{port}/oauth/callback'],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
        // Its effective scope: the 401's or PRM's, else "openid email profile".
        scope: 'mcp:tools',
      },
    },
    redirectUri: 'http://localhost:{port}/oauth/callback',
    portBehaviour: 'a port derived from the server URL hash (3334 in older versions), another when busy',
    discovery: STANDARD_DISCOVERY,
    resource: { authorize: 'exact', token: 'exact', refresh: 'exact' },
    scope: 'prm',
    tokenAuth: 'none',
    notes: 'The real package runs in test/e2e/mcp-remote.test.ts.',
  },
];

/** The `resource` value a client sends for `mcpUrl`, or undefined when it sends none. */
export function resourceValue(mcpUrl: string, form: ResourceForm): string | undefined {
  switch (form) {
    case 'absent':
      return undefined;
    case 'exact':
      return mcpUrl;
    case 'trailing-slash':
      return `${mcpUrl}/`;
    case 'uppercase': {
      const url = new URL(mcpUrl);
      return `${url.protocol.toUpperCase()}//${url.host.toUpperCase()}${url.pathname}`;
    }
  }
}

/** The `scope` parameter a client sends given the scopes it discovered; undefined: no parameter. */
export function scopeValue(behaviour: ScopeBehaviour, discovered: readonly string[]): string | undefined {
  switch (behaviour) {
    case 'absent':
      return undefined;
    case 'empty':
      return '';
    case 'offline_access':
      return 'offline_access';
    case 'prm':
      return discovered.join(' ');
    case 'prm+offline_access':
      return [...discovered, 'offline_access'].join(' ');
  }
}

/** Fills `{port}` in a redirect URI or a DCR body. */
export function withPort<T>(value: T, port: number): T {
  return JSON.parse(JSON.stringify(value).replaceAll('{port}', String(port))) as T;
}
