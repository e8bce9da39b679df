/**
 * The whole product on loopback, for end-to-end tests: a real oidc-provider as the corporate IdP
 * (https, test CA, one confidential client, no DCR), real MCP servers (the demo server shipped in the
 * repo, over Streamable HTTP), and the gateway itself started from a validated configuration with
 * SQLite storage in a temporary directory, so restarts can be tested.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { type RunningGateway, startGateway } from '../../src/app.ts';
import { configSchema, type GatewayConfigInput } from '../../src/config/schema.ts';
import type { Clock } from '../../src/core/clock.ts';
import { type DemoServer, startDemoServer } from '../../src/demo/server.ts';
import type { IdpTokens } from '../../src/idp/types.ts';
import { createLogger, type Logger } from '../../src/observability/logger.ts';
import { NS } from '../../src/storage/records.ts';
import { loadEncryptionKeys, SecretBox } from '../../src/storage/secret-box.ts';
import { Browser, type Page } from '../support/browser.ts';
import { connectWithLogin, type TestOAuthClientProvider } from '../support/mcp-client.ts';
import { type OidcIdp, type OidcIdpOptions, startOidcIdp, type TestUser } from '../support/oidc-idp.ts';
import { freePort } from '../support/ports.ts';
import { createTestCa, createTrustingFetch, type TestCa } from '../support/tls.ts';

export interface Stack {
  ca: TestCa;
  idp: OidcIdp;
  /** The MCP servers behind the gateway, by name. */
  upstreams: Map<string, DemoServer>;
  gateway: RunningGateway;
  /** The issuer and public base URL, e.g. http://localhost:41234 */
  issuer: string;
  dataDir: string;
  config: GatewayConfigInput;
  /** fetch that trusts the test CA (for the SDK transport; the gateway itself is plain http on loopback). */
  fetch: typeof fetch;
  mcpUrl(path?: string): string;
  /** Stops the gateway and starts it again on the same port and data directory. */
  restartGateway(): Promise<void>;
  close(): Promise<void>;
}

export interface StackOptions {
  /** Extra servers beyond the default `tools` at /mcp. */
  extraServers?: NonNullable<GatewayConfigInput['servers']>;
  configure?: (config: GatewayConfigInput) => void;
  /** Extra users at the upstream IdP, besides USERS (for example with `email_verified`). */
  idpUsers?: Record<string, TestUser>;
  /** The gateway's logger (default: silent, or E2E_LOG_LEVEL), for tests that assert audit events. */
  logger?: Logger;
  /** Token lifetimes at the upstream IdP, in seconds (short access tokens to test IdP-token refresh). */
  idpTtl?: OidcIdpOptions['ttl'];
  /**
   * The gateway's identity providers instead of the default one (the default IdP still runs, unused):
   * called with the gateway's callback URL once its port is known, so stand-ins can register it.
   */
  identityProviders?: (callbackUrl: string) => Promise<NonNullable<GatewayConfigInput['identityProviders']>>;
  /** The gateway's clock (test/support/clock.ts), for tests that move its time instead of waiting. */
  clock?: Clock;
  /** The audit stream (docs/audit.md); by default `audit.destination: off`, so tests write no audit lines. */
  audit?: Logger;
}

export const USERS = {
  alice: { email: 'alice@example.com', name: 'Alice Example', groups: ['engineering'] },
  bob: { email: 'bob@example.com', name: 'Bob Example', groups: ['sales'] },
};

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const ca = await createTestCa();
  const port = await freePort();
  const issuer = `http://localhost:${port}`;
  const idp = await startOidcIdp({
    clientId: 'mcp-gateway',
    clientSecret: 'idp-app-secret-value-0123456789',
    redirectUris: [`${issuer}/callback`],
    users: { ...USERS, ...options.idpUsers },
    ...(options.idpTtl ? { ttl: options.idpTtl } : {}),
  });
  const upstreams = new Map<string, DemoServer>();
  upstreams.set('tools', await startDemoServer({ host: '127.0.0.1', port: 0 }));
  for (const server of options.extraServers ?? []) {
    if ('url' in server.upstream && server.upstream.url === 'demo') {
      const demo = await startDemoServer({ host: '127.0.0.1', port: 0 });
      upstreams.set(server.name, demo);
      server.upstream = { url: demo.url };
    }
  }
  const dataDir = await mkdtemp(join(tmpdir(), 'mcpgw-e2e-'));
  const config: GatewayConfigInput = {
    publicUrl: issuer,
    listen: { host: '127.0.0.1', port },
    dataDir,
    storage: { type: 'sqlite' },
    extraCaCertificatesFile: ca.caFile,
    clientIdMetadataDocuments: { allowPrivateAddresses: true },
    identityProviders: [
      { type: 'oidc', id: 'corp', displayName: 'Example Corp SSO', issuer: idp.issuer, clientId: idp.clientId, clientSecret: idp.clientSecret },
    ],
    servers: [
      {
        name: 'tools',
        path: '/mcp',
        upstream: { url: upstreams.get('tools')!.url },
        scopes: ['mcp:tools'],
        identityHeaders: { subject: 'x-user-id', email: 'x-user-email', name: 'x-user-name', groups: 'x-user-groups' },
      },
      ...(options.extraServers ?? []),
    ],
    log: { level: 'silent' },
    audit: { destination: 'off' },
  };
  if (options.identityProviders) config.identityProviders = await options.identityProviders(`${issuer}/callback`);
  options.configure?.(config);
  const logger = options.logger ?? createLogger(process.env.E2E_LOG_LEVEL ?? 'silent');
  const start = () => startGateway(configSchema.parse(config), { logger, announce: () => {}, clock: options.clock, audit: options.audit });
  let gateway = await start();
  const trustingFetch = createTrustingFetch(ca.caPem);

  const stack: Stack = {
    ca,
    idp,
    upstreams,
    get gateway() {
      return gateway;
    },
    issuer,
    dataDir,
    config,
    fetch: trustingFetch,
    mcpUrl: (path = '/mcp') => `${issuer}${path}`,
    async restartGateway() {
      await gateway.close();
      gateway = await start();
    },
    async close() {
      await gateway.close();
      await idp.close();
      for (const upstream of upstreams.values()) await upstream.close();
      await trustingFetch.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return stack;
}

/** From the gateway's /authorize to the client's redirect URI: consent, then the IdP login. */
export async function approveAndSignIn(
  stack: Stack,
  browser: Browser,
  authorizationUrl: URL | string,
  redirectUrl: string,
  username: keyof typeof USERS = 'alice',
): Promise<Page> {
  let page = await browser.goto(authorizationUrl, { stopAt: redirectUrl });
  if (!page.url.pathname.startsWith('/interaction/') || page.stopped)
    throw new Error(`expected the consent page, got ${page.url.href} (${page.status}): ${page.text.slice(0, 300)}`);
  page = await browser.submitForm(page, { button: 'approve' });
  return stack.idp.signIn(browser, page, username, { stopAt: redirectUrl });
}

/** An SDK client logged in through the full flow, connected to `mcpUrl`. */
export async function loggedInClient(
  stack: Stack,
  provider: TestOAuthClientProvider,
  options: { mcpPath?: string; username?: keyof typeof USERS; browser?: Browser } = {},
): Promise<Client> {
  const browser = options.browser ?? new Browser({ ca: stack.ca.caPem });
  return connectWithLogin({
    mcpUrl: stack.mcpUrl(options.mcpPath),
    provider,
    fetch: stack.fetch,
    login: async (authorizationUrl) => (await approveAndSignIn(stack, browser, authorizationUrl, provider.redirectUrl, options.username)).url,
  });
}

/** The user's IdP tokens as the gateway stored them (sealed at rest), or undefined. */
export async function storedIdpTokens(stack: Stack, userId: string): Promise<IdpTokens | undefined> {
  const box = new SecretBox(await loadEncryptionKeys(configSchema.parse(stack.config)));
  const sealed = await stack.gateway.storage.get<string>(NS.idpTokens, userId);
  return sealed === undefined ? undefined : box.openJson<IdpTokens>(sealed, userId);
}
