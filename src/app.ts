/**
 * Wires the gateway together from a validated configuration: storage, keys, identity providers, the
 * authorization server, the resource-server gateway and one `node:http` server in front of them.
 *
 * Request routing order matters for speed: MCP traffic (the hot path) is matched first, before any
 * authorization-server work.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { localProviderSchema, serverSchema, type GatewayConfig, type ServerConfig, type LocalProviderConfig } from './config/schema.ts';
import { createLogger, type Logger } from './observability/logger.ts';
import { openStorage, startSweeper } from './storage/index.ts';
import type { Storage } from './storage/types.ts';
import { SecretBox, loadEncryptionKeys } from './storage/secret-box.ts';
import { NS, type UserRecord } from './storage/records.ts';
import { loadOrCreateKeys } from './authorization/keys.ts';
import { createAuthorizationServer, type ProtectedResource } from './authorization/index.ts';
import { createResourceServer } from './resource-server/index.ts';
import { createForwardAuth } from './forward-auth/index.ts';
import { canonicalizeResource, resourceFor } from './core/resource-uri.ts';
import { createIdentityProviders } from './idp/index.ts';
import { withGithubOrganizationDefaults } from './idp/github.ts';
import { createIdpTokenSource } from './idp/idp-tokens.ts';
import { startUpstreamTargets } from './proxy/upstream-targets.ts';
import { createOutboundFetch } from './http/outbound.ts';
import { hashPassword } from './idp/passwords.ts';
import { OAuthError, sendJson, sendOAuthError } from './http/errors.ts';
import { clientAddressResolver } from './http/client-address.ts';
import type { Clock } from './core/clock.ts';

export interface RunningGateway {
  /** The address actually listened on (differs from publicUrl with port 0 or behind a proxy). */
  listenUrl: string;
  server: Server;
  storage: Storage;
  logger: Logger;
  close(): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
  /** Where first-start messages go (the demo password); stdout by default. */
  announce?: (line: string) => void;
  /**
   * Every expiry the gateway judges itself: storage TTLs, gateway-token `exp`, IdP-token expiry and
   * refresh, stdio recycling, registration rate-limit windows (the system clock by default). Tests
   * pass one they can move. oidc-provider keeps its own time for what it issues and checks.
   */
  clock?: Clock;
}

const DEMO_USER_RECORD = 'demo-user';

/**
 * The embedded default has no IdP configured: a built-in local provider with one demo user, whose
 * password is generated at first start, printed once, and stored only as a hash.
 */
async function demoIdentityProvider(storage: Storage, announce: (line: string) => void): Promise<LocalProviderConfig> {
  let passwordHash = await storage.get<string>(NS.keys, DEMO_USER_RECORD);
  if (passwordHash === undefined) {
    const password = randomBytes(12).toString('base64url');
    passwordHash = await hashPassword(password);
    await storage.set(NS.keys, DEMO_USER_RECORD, passwordHash);
    announce(`\nFirst start: created the demo user.\n  username: demo\n  password: ${password}\nThis password is shown only once. Configure identityProviders to use your own IdP.\n`);
  }
  return localProviderSchema.parse({
    type: 'local',
    displayName: 'Demo account',
    users: [{ username: 'demo', passwordHash, email: 'demo@example.com', name: 'Demo User' }],
  });
}

export async function startGateway(config: GatewayConfig, options: StartOptions = {}): Promise<RunningGateway> {
  const logger = options.logger ?? createLogger(config.log.level);
  const announce = options.announce ?? ((line: string) => process.stdout.write(`${line}\n`));
  const issuer = config.publicUrl; // the schema normalises it to the origin form, the issuer's
  const branding = config.ui;

  const { clock } = options;
  const storage = await openStorage(config, { clock });
  const stopSweeper = startSweeper(storage, 60_000, logger);
  const secretBox = new SecretBox(await loadEncryptionKeys(config, logger));
  const keys = await loadOrCreateKeys(storage, secretBox, config.consent.cookieSecret);
  const extraCaPem = config.extraCaCertificatesFile ? await readFile(config.extraCaCertificatesFile, 'utf8') : undefined;

  // MCP servers: the configured ones, or the demo server shipped in the repo.
  const servers: ServerConfig[] = config.servers ?? [
    serverSchema.parse({ name: 'demo', path: '/mcp', upstream: { builtin: 'demo' }, identityHeaders: { subject: 'x-user-id', email: 'x-user-email', name: 'x-user-name' } }),
  ];
  const resources: ProtectedResource[] = servers.map((server) => ({
    name: server.name,
    resource: resourceFor(issuer, server),
    scopes: server.scopes,
    access: { gateway: config.access, server: server.access },
    requiresIdpToken: Boolean(server.idpToken?.header ?? server.idpToken?.env),
  }));

  // Identity providers.
  // Access rules naming GitHub orgs or teams need the membership read at login.
  const providerConfigs = withGithubOrganizationDefaults(config.identityProviders ?? [await demoIdentityProvider(storage, announce)], config);
  const outboundFetch = createOutboundFetch({ extraCaPem, timeoutMs: 10_000 });
  const { all: identityProviders, local: localProviders } = createIdentityProviders(providerConfigs, {
    storage,
    issuer,
    cookieSecret: keys.consentSecret,
    branding,
    logger,
    fetch: outboundFetch,
    clientAddress: clientAddressResolver(config.trustProxy),
    clock,
  });
  const idpTokens = createIdpTokenSource({ storage, secretBox, providers: identityProviders, logger, retentionSeconds: config.tokens.refreshTokenTtl, clock });
  const upstreams = await startUpstreamTargets(servers, { logger, idpTokens, clock });

  const authorization = await createAuthorizationServer({
    config,
    resources,
    canonicalizeResource,
    storage,
    secretBox,
    keys,
    identityProviders,
    extraCaPem,
    logger,
    clock,
  });
  const gateway = createResourceServer({
    issuer,
    servers,
    publicKeys: authorization.publicKeys,
    findUser: (sub) => storage.get<UserRecord>(NS.users, sub),
    logger,
    upstreams,
    idpTokens,
    clock,
    // X-Forwarded-For to upstreams starts from the address the gateway trusts (trustProxy), not just the socket peer.
    clientAddress: clientAddressResolver(config.trustProxy),
  });
  // Checks for reverse proxies in front of `forwardAuth` servers; same guard, so one token cache.
  const forwardAuth = createForwardAuth({ issuer, servers, guard: gateway.guard, logger });

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (forwardAuth.handle(req, res)) return;
    // `/<mcp path>/.well-known/openid-configuration` is an authorization-server alias some clients
    // probe; it must not be taken for MCP traffic under that path.
    if (!req.url?.includes('/.well-known/openid-configuration') && gateway.handle(req, res)) return;
    const url = new URL(req.url ?? '/', issuer);
    if (url.pathname === '/healthz') {
      sendJson(res, 200, { status: 'ok' });
      return;
    }
    const signIn = /^\/sign-in\/([a-z0-9-]+)$/.exec(url.pathname);
    const local = signIn?.[1] ? localProviders.get(signIn[1]) : undefined;
    if (local) {
      if (req.method === 'POST') await local.handleSignInSubmit(req, res, url);
      else await local.handleSignInPage(req, res, url);
      return;
    }
    if (await authorization.handle(req, res, url)) return;
    sendJson(res, 404, { error: 'not_found', error_description: `nothing is served at ${url.pathname}` });
  }

  const server = createServer((req, res) => {
    route(req, res).catch((error: unknown) => {
      // A refused request (an OAuthError: body too large, wrong content type) keeps its own status;
      // anything else is our failure and says nothing internal on the wire.
      if (error instanceof OAuthError) logger.warn({ method: req.method, path: req.url?.split('?')[0], error: error.error, detail: error.detail ?? error.description }, 'request refused');
      else logger.error({ err: error, method: req.method, path: req.url?.split('?')[0] }, 'request failed');
      if (!res.headersSent) sendOAuthError(res, error);
      else res.destroy();
    });
  });
  // Longer than common load balancer idle timeouts, so the proxy side closes first.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const listenUrl = `http://${host}:${address.port}`;
  logger.info({ listen: listenUrl, issuer, servers: resources.map((r) => r.resource), storage: config.storage.type }, 'gateway listening');
  announce(`mcp-oauth-gateway listening on ${listenUrl}; issuer ${issuer}; MCP servers: ${resources.map((r) => r.resource).join(', ')}`);

  let closed = false;
  return {
    listenUrl,
    server,
    storage,
    logger,
    async close() {
      if (closed) return;
      closed = true;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await gateway.close();
      await authorization.close();
      await outboundFetch.close();
      await upstreams.close();
      stopSweeper();
      await storage.close();
      logger.flush?.();
    },
  };
}
