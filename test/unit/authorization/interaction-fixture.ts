/**
 * Real components for the interaction actions: memory storage, the gateway's own keys, a real
 * oidc-provider, real local identity providers, and a loopback HTTP server whose routes call the
 * actions directly with a context the test owns (swap its clock, its providers, its resources).
 *
 * @example
 * const fixture = await startInteractionFixture(t);
 * const browser = fixture.browser();
 * const consent = await browser.goto(await fixture.authorizationUrl());
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import type Provider from 'oidc-provider';
import type { InteractionContext } from '../../../src/authorization/interactions/context.ts';
import { decide } from '../../../src/authorization/interactions/decision.ts';
import { handleIdpCallback } from '../../../src/authorization/interactions/idp-callback.ts';
import { showConsent } from '../../../src/authorization/interactions/show-consent.ts';
import { loadOrCreateKeys } from '../../../src/authorization/keys.ts';
import { createProvider, type ProtectedResource } from '../../../src/authorization/provider.ts';
import { configSchema, type LocalProviderConfig } from '../../../src/config/schema.ts';
import { systemClock } from '../../../src/core/clock.ts';
import { canonicalizeResource } from '../../../src/core/resource-uri.ts';
import { LocalIdentityProvider } from '../../../src/idp/local.ts';
import { hashPassword } from '../../../src/idp/passwords.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { MemoryStorage } from '../../../src/storage/memory.ts';
import { NS } from '../../../src/storage/records.ts';
import { SecretBox } from '../../../src/storage/secret-box.ts';
import { Browser, type Page } from '../../support/browser.ts';

export const CLIENT_REDIRECT = 'https://client.example/cb';
export const PASSWORD = 'correct horse battery staple';
const passwordHash = hashPassword(PASSWORD);

/** The real memory storage, noting the states of pending logins written, so tests can look them up. */
export class ObservedStorage extends MemoryStorage {
  readonly pendingLoginStates: string[] = [];
  override async set(namespace: string, key: string, value: unknown, ttlSeconds?: number): Promise<void> {
    if (namespace === NS.pendingLogins) this.pendingLoginStates.push(key);
    await super.set(namespace, key, value, ttlSeconds);
  }
}

export interface LocalAccount {
  username: string;
  email?: string;
}

export interface FixtureOptions {
  /** One local identity provider per entry, each with the given accounts (default: one, with alice). */
  providers?: { id: string; displayName: string; users: LocalAccount[] }[];
  /** The MCP servers, as paths on the fixture's origin (default: one, `/mcp`, open to everyone). */
  servers?: {
    name: string;
    path: string;
    scopes?: string[];
    /** Scopes needed to connect; the rest of `scopes` are optional (`toolAccess`) scopes. */
    requiredScopes?: string[];
    scopeDescriptions?: Record<string, string>;
    access?: ProtectedResource['access'];
  }[];
}

export interface InteractionFixture {
  issuer: string;
  storage: ObservedStorage;
  provider: Provider;
  /** The context every route hands the actions; tests may change its fields (the clock, providers). */
  ctx: InteractionContext;
  resources: ProtectedResource[];
  browser(): Browser;
  /** A registered public client's /authorize URL for the first (or the named) MCP server. */
  authorizationUrl(resource?: string): Promise<URL>;
  /** From /authorize to the IdP's sign-in page: consent approved, the one provider started. */
  signInPage(browser: Browser, authorizationUrl: URL): Promise<Page>;
  /** Fills the local sign-in form and stops at the gateway's callback without fetching it. */
  callbackUrl(browser: Browser, signInPage: Page, username?: string): Promise<URL>;
}

export async function startInteractionFixture(t: TestContext, options: FixtureOptions = {}): Promise<InteractionFixture> {
  const storage = new ObservedStorage();
  const secretBox = new SecretBox([randomBytes(32)]);
  const keys = await loadOrCreateKeys(storage, secretBox);
  const logger = createLogger('silent');
  const branding = { productName: 'Test Gateway' };
  let route: (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void> = async () => {};
  const server = createServer((req, res) => {
    route(req, res, new URL(req.url ?? '/', issuer)).catch((error: unknown) => {
      res.writeHead(500).end(String(error));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  // `localhost`: the browser's cookie rules treat it as a secure context, as Chromium does, so the
  // `__Host-` browser-binding cookie is kept over plain http.
  const issuer = `http://localhost:${(server.address() as AddressInfo).port}`;

  const resources: ProtectedResource[] = (options.servers ?? [{ name: 'tools', path: '/mcp', scopes: ['mcp:tools'] }]).map((entry) => ({
    name: entry.name,
    resource: `${issuer}${entry.path}`,
    scopes: entry.scopes ?? [],
    ...(entry.requiredScopes ? { requiredScopes: entry.requiredScopes } : {}),
    ...(entry.scopeDescriptions ? { scopeDescriptions: entry.scopeDescriptions } : {}),
    access: entry.access,
  }));
  const provider = createProvider({
    issuer,
    resources,
    canonicalizeResource,
    storage,
    secretBox,
    signingKeys: keys.signing.map((entry) => entry.jwk),
    cookieKeys: keys.cookieKeys,
    tokens: { accessTokenTtl: 300, refreshTokenTtl: 3600, authorizationCodeTtl: 60 },
    registration: { enabled: true, unusedClientTtl: 3600, idleClientTtl: 3600 },
    cimd: { enabled: false, allowHosts: [], denyHosts: [], maxBytes: 4096, fetch: fetch as never },
    renderError: (ctx, out) => {
      ctx.type = 'text';
      ctx.body = out.error;
    },
    logger,
  });
  const identityProviders = await localProviders(
    options.providers ?? [{ id: 'local', displayName: 'Team accounts', users: [{ username: 'alice', email: 'alice@example.com' }] }],
    { storage, issuer, secret: keys.consentSecret, logger },
  );

  const ctx: InteractionContext = {
    provider,
    callbackUrl: `${issuer}/callback`,
    resources,
    canonicalizeResource,
    storage,
    secretBox,
    identityProviders,
    consentSecret: keys.consentSecret,
    branding,
    logger,
    tokenRetention: { idpTokens: 3600 },
    clock: systemClock,
  };
  const providerCallback = provider.callback();
  route = async (req, res, url) => {
    const interaction = /^\/interaction\/([^/]+)(\/decision)?$/.exec(url.pathname);
    const signIn = /^\/sign-in\/([^/]+)$/.exec(url.pathname);
    if (interaction?.[1] && !interaction[2]) return showConsent(ctx, req, res, interaction[1]);
    if (interaction?.[1]) return decide(ctx, req, res, interaction[1]);
    if (url.pathname === '/callback') return handleIdpCallback(ctx, req, res, url);
    if (signIn?.[1]) {
      const local = ctx.identityProviders.find((candidate) => candidate.id === signIn[1]) as LocalIdentityProvider;
      return req.method === 'POST' ? local.handleSignInSubmit(req, res, url) : local.handleSignInPage(req, res, url);
    }
    return providerCallback(req, res);
  };

  return {
    issuer,
    storage,
    provider,
    ctx,
    resources,
    browser: () => {
      const browser = new Browser();
      t.after(() => browser.close());
      return browser;
    },
    authorizationUrl: (resource) => authorizationUrl(issuer, resource ?? resources[0]!.resource, resources),
    signInPage: async (browser, url) => {
      const consent = await browser.goto(url);
      assert.equal(consent.status, 200, String(consent));
      return browser.submitForm(consent, { button: 'approve' });
    },
    callbackUrl: async (browser, signInPage, username = 'alice') => {
      const stopped = await browser.submitForm(signInPage, { fields: { username, password: PASSWORD }, stopAt: `${issuer}/callback` });
      assert.ok(stopped.stopped, String(stopped));
      return stopped.url;
    },
  };
}

async function localProviders(
  entries: NonNullable<FixtureOptions['providers']>,
  deps: { storage: MemoryStorage; issuer: string; secret: Buffer; logger: ReturnType<typeof createLogger> },
): Promise<LocalIdentityProvider[]> {
  const hash = await passwordHash;
  const parsed = configSchema.parse({
    identityProviders: entries.map((entry) => ({
      type: 'local',
      id: entry.id,
      displayName: entry.displayName,
      users: entry.users.map((user) => ({ ...user, passwordHash: hash })),
    })),
  }).identityProviders;
  return (parsed ?? []).map(
    (config) =>
      new LocalIdentityProvider({
        config: config as LocalProviderConfig,
        storage: deps.storage,
        issuer: deps.issuer,
        cookieSecret: deps.secret,
        branding: { productName: 'Test Gateway' },
        logger: deps.logger,
      }),
  );
}

async function authorizationUrl(issuer: string, resource: string, resources: ProtectedResource[]): Promise<URL> {
  const registration = await fetch(`${issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: 'Unit Client', redirect_uris: [CLIENT_REDIRECT], token_endpoint_auth_method: 'none' }),
  });
  assert.equal(registration.status, 201, await registration.clone().text());
  const { client_id: clientId } = (await registration.json()) as { client_id: string };
  const verifier = randomBytes(32).toString('base64url');
  const url = new URL('/authorize', issuer);
  url.searchParams.set('client_id', clientId);
  url.searchParams.set('redirect_uri', CLIENT_REDIRECT);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('code_challenge', createHash('sha256').update(verifier).digest('base64url'));
  url.searchParams.set('code_challenge_method', 'S256');
  url.searchParams.set('state', 'client-state');
  url.searchParams.set('resource', resource);
  const server = resources.find((candidate) => candidate.resource === resource);
  if (server && server.scopes.length > 0) url.searchParams.set('scope', server.scopes.join(' '));
  return url;
}
