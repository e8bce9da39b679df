/**
 * Wires the gateway together from a validated configuration: storage, keys, identity providers, the
 * authorization server, the resource-server gateway and one `node:http` server in front of them,
 * whose requests the one router (src/http/router.ts) dispatches: MCP traffic (the hot path) first,
 * then the gateway's own route table.
 */

import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type AuthorizationServer, createAuthorizationServer, type GrantRevoker, type ProtectedResource } from './authorization/index.ts';
import { type GatewayKeys, loadOrCreateKeys } from './authorization/keys.ts';
import { ID_TOKEN_TTL_SECONDS } from './authorization/provider.ts';
import { SigningKeyRing } from './authorization/signing-key-ring.ts';
import { PRE_PUBLICATION_MS, retentionFor, type SigningKeyPolicy } from './authorization/signing-keys.ts';
import type { GatewayConfig, ServerConfig } from './config/schema.ts';
import { type Clock, systemClock } from './core/clock.ts';
import { canonicalizeResource, resourceFor } from './core/resource-uri.ts';
import { demoIdentityProvider, demoServer } from './demo/embedded-default.ts';
import { createForwardAuth, type ForwardAuth } from './forward-auth/index.ts';
import { clientAddressResolver } from './http/client-address.ts';
import { OAuthError, sendJson, sendOAuthError } from './http/errors.ts';
import { createOutboundFetch, type OutboundFetch } from './http/outbound.ts';
import { createRouter, type RouteHandler } from './http/router.ts';
import type { HandlerName } from './http/routes.ts';
import { withGithubOrganizationDefaults } from './idp/github.ts';
import { createIdpTokenSource, type IdpTokenSource } from './idp/idp-tokens.ts';
import { createIdentityProviders } from './idp/index.ts';
import type { LocalIdentityProvider } from './idp/local.ts';
import type { IdentityProvider } from './idp/types.ts';
import { createAuditLogger, startAuditFlush } from './observability/audit.ts';
import { createLogger, type Logger } from './observability/logger.ts';
import { startUpstreamTargets, type UpstreamTargets } from './proxy/upstream-targets.ts';
import { createResourceServer, type ResourceServer } from './resource-server/index.ts';
import { openStorage, startSweeper } from './storage/index.ts';
import { NS, type UserRecord } from './storage/records.ts';
import { RevocationList, revocationRetentionSeconds } from './storage/revocation-list.ts';
import { loadEncryptionKeys, SecretBox } from './storage/secret-box.ts';
import type { Storage } from './storage/types.ts';

export interface RunningGateway {
  /** The address actually listened on (differs from publicUrl with port 0 or behind a proxy). */
  listenUrl: string;
  server: Server;
  storage: Storage;
  logger: Logger;
  /** The grants whose access tokens this replica refuses; tests call `sync()` instead of waiting for a poll. */
  revocations: RevocationList;
  /** Revokes grants by grant, user or client (docs/tokens.md, "Revocation"). */
  grants: GrantRevoker;
  close(): Promise<void>;
}

export interface StartOptions {
  /**
   * Operational logs. A logger passed here copies audit events to the audit stream only when it was
   * made with it (`createLogger(level, destination, audit)`); the one made by default is.
   */
  logger?: Logger;
  /** The audit stream (docs/audit.md); by default the one `audit.destination` names. */
  audit?: Logger;
  /** Where first-start messages go (the demo password); stdout by default. */
  announce?: (line: string) => void;
  /**
   * Every expiry the gateway judges itself: storage TTLs, gateway-token `exp`, IdP-token expiry and
   * refresh, stdio recycling, registration rate-limit windows (the system clock by default). Tests
   * pass one they can move. oidc-provider keeps its own time for what it issues and checks.
   */
  clock?: Clock;
}

/** What every room stands on: storage, encryption at rest, keys, extra trusted CAs. */
interface Foundations {
  clock: Clock;
  storage: Storage;
  stopSweeper: () => void;
  revocations: RevocationList;
  secretBox: SecretBox;
  keys: GatewayKeys;
  /** The live signing keys, reloaded from storage and rotated on schedule (docs/keys.md). */
  signingKeys: SigningKeyRing;
  /** Stops the reload timer and waits for a read or rotation in flight (before storage closes). */
  stopSigningKeys: () => Promise<void>;
  extraCaPem: string | undefined;
}

interface IdentityRoom {
  all: IdentityProvider[];
  local: ReadonlyMap<string, LocalIdentityProvider>;
  idpTokens: IdpTokenSource;
  outboundFetch: OutboundFetch;
}

/** The rooms that answer requests, and what must be closed with them. */
interface Rooms {
  resources: ProtectedResource[];
  identity: IdentityRoom;
  upstreams: UpstreamTargets;
  authorization: AuthorizationServer;
  gateway: ResourceServer;
  forwardAuth: ForwardAuth;
}

export async function startGateway(config: GatewayConfig, options: StartOptions = {}): Promise<RunningGateway> {
  const audit = options.audit ?? createAuditLogger(config.audit.destination);
  const stopAuditFlush = startAuditFlush(audit);
  const logger = options.logger ?? createLogger(config.log.level, undefined, audit);
  const announce = options.announce ?? ((line: string) => process.stdout.write(`${line}\n`));
  const foundations = await openFoundations(config, logger, options.clock ?? systemClock);
  const rooms = await createRooms(config, foundations, { logger, audit }, announce);

  const server = createServer(createRouter({ mcp: rooms.gateway.serveMcp, handlers: routeHandlers(config, rooms), onError: requestFailed(logger) }));
  // Longer than common load balancer idle timeouts, so the proxy side closes first.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  const listenUrl = await listen(server, config.listen);

  const resources = rooms.resources.map((r) => r.resource);
  logger.info({ listen: listenUrl, issuer: config.publicUrl, servers: resources, storage: config.storage.type }, 'gateway listening');
  announce(`mcp-oauth-gateway listening on ${listenUrl}; issuer ${config.publicUrl}; MCP servers: ${resources.join(', ')}`);

  let closing: Promise<void> | undefined;
  return {
    listenUrl,
    server,
    storage: foundations.storage,
    logger,
    revocations: foundations.revocations,
    grants: rooms.authorization.grants,
    close: () =>
      (closing ??= shutDown(server, foundations, rooms, logger).finally(() => {
        stopAuditFlush();
        audit.flush();
      })),
  };
}

async function openFoundations(config: GatewayConfig, logger: Logger, clock: Clock): Promise<Foundations> {
  const storage = await openStorage(config, { clock });
  const stopSweeper = startSweeper(storage, 60_000, logger);
  const revocations = new RevocationList({
    storage,
    retentionSeconds: revocationRetentionSeconds(config.tokens.accessTokenTtl),
    pollIntervalMs: config.tokens.revocationPollInterval * 1000,
    logger,
    clock,
  });
  // Revocations made before this replica started apply from its first request on.
  await revocations.sync();
  revocations.start();
  const secretBox = new SecretBox(await loadEncryptionKeys(config, logger));
  const keys = await loadOrCreateKeys(storage, secretBox, config.consent.cookieSecret, clock);
  const signingKeys = new SigningKeyRing({ storage, secretBox, clock, logger, policy: signingKeyPolicy(config), initial: keys });
  const stopSigningKeys = signingKeys.startTimer();
  const extraCaPem = config.extraCaCertificatesFile ? await readFile(config.extraCaCertificatesFile, 'utf8') : undefined;
  return { clock, storage, stopSweeper, revocations, secretBox, keys, signingKeys, stopSigningKeys, extraCaPem };
}

/** The signing-key schedule from the configuration; a retired key outlives the longest token it signed. */
export function signingKeyPolicy(config: GatewayConfig): SigningKeyPolicy {
  return {
    rotationPeriodMs: config.signingKeys.rotationPeriod * 1000,
    prePublicationMs: PRE_PUBLICATION_MS,
    retentionMs: retentionFor(Math.max(config.tokens.accessTokenTtl, ID_TOKEN_TTL_SECONDS)),
  };
}

async function createRooms(
  config: GatewayConfig,
  foundations: Foundations,
  logs: { logger: Logger; audit: Logger },
  announce: (line: string) => void,
): Promise<Rooms> {
  const { storage, clock } = foundations;
  const { logger, audit } = logs;
  const servers: ServerConfig[] = config.servers ?? [demoServer()];
  const resources = protectedResources(config, servers);
  const identity = await createIdentityRoom(config, foundations, logger, announce);
  const upstreams = await startUpstreamTargets(servers, { logger, idpTokens: identity.idpTokens, clock });
  const authorization = await createAuthorizationServer({
    config,
    resources,
    canonicalizeResource,
    storage,
    secretBox: foundations.secretBox,
    keys: foundations.keys,
    signingKeys: foundations.signingKeys,
    identityProviders: identity.all,
    extraCaPem: foundations.extraCaPem,
    logger,
    clock,
    revocations: foundations.revocations,
  });
  const gateway = createResourceServer({
    issuer: config.publicUrl,
    servers,
    publicKeys: authorization.publicKeys,
    refreshKeys: (kid) => foundations.signingKeys.refreshForUnknownKid(kid),
    findUser: (sub) => storage.get<UserRecord>(NS.users, sub),
    logger,
    upstreams,
    idpTokens: identity.idpTokens,
    clock,
    isRevoked: (grantId) => foundations.revocations.isRevoked(grantId),
    // X-Forwarded-For to upstreams starts from the address the gateway trusts (trustProxy), not just the socket peer.
    clientAddress: clientAddressResolver(config.trustProxy),
    stripClientHeaders: config.stripClientHeaders,
    audit,
    rateLimitStorage: storage,
  });
  // Checks for reverse proxies in front of `forwardAuth` servers; same guard, so one token cache.
  const forwardAuth = createForwardAuth({ issuer: config.publicUrl, servers, guard: gateway.guard, logger });
  return { resources, identity, upstreams, authorization, gateway, forwardAuth };
}

/** Each MCP server as the authorization server sees it: an audience with scopes and access rules. */
function protectedResources(config: GatewayConfig, servers: readonly ServerConfig[]): ProtectedResource[] {
  return servers.map((server) => ({
    name: server.name,
    resource: resourceFor(config.publicUrl, server),
    scopes: server.scopes,
    access: { gateway: config.access, server: server.access },
    requiresIdpToken: Boolean(server.idpToken?.header ?? server.idpToken?.env),
  }));
}

/** The identity providers (the demo account when none is configured) and the IdP tokens they hand out. */
async function createIdentityRoom(config: GatewayConfig, foundations: Foundations, logger: Logger, announce: (line: string) => void): Promise<IdentityRoom> {
  const { storage } = foundations;
  // Access rules naming GitHub orgs or teams need the membership read at login.
  const providerConfigs = withGithubOrganizationDefaults(config.identityProviders ?? [await demoIdentityProvider(storage, announce)], config);
  const outboundFetch = createOutboundFetch({ extraCaPem: foundations.extraCaPem, timeoutMs: 10_000 });
  const { all, local } = createIdentityProviders(providerConfigs, {
    storage,
    issuer: config.publicUrl, // the schema normalises it to the origin form, the issuer's
    cookieSecret: foundations.keys.consentSecret,
    branding: config.ui,
    logger,
    fetch: outboundFetch,
    clientAddress: clientAddressResolver(config.trustProxy),
    clock: foundations.clock,
  });
  const idpTokens = createIdpTokenSource({
    storage,
    secretBox: foundations.secretBox,
    providers: all,
    logger,
    retentionSeconds: config.tokens.refreshTokenTtl,
    clock: foundations.clock,
  });
  return { all, local, idpTokens, outboundFetch };
}

/** Every handler the route table names; the compiler checks that none is missing. */
function routeHandlers(config: GatewayConfig, rooms: Rooms): Record<HandlerName, RouteHandler> {
  return {
    ...rooms.authorization.handlers,
    ...rooms.gateway.handlers,
    ...rooms.forwardAuth.handlers,
    localSignIn: localSignIn(config.publicUrl, rooms.identity.local),
    health: (_req, res) => sendJson(res, 200, { status: 'ok' }),
  };
}

function localSignIn(issuer: string, providers: ReadonlyMap<string, LocalIdentityProvider>): RouteHandler {
  return (req, res, target) => {
    const provider = providers.get(target.params.provider as string);
    if (provider === undefined) return false;
    const url = new URL(req.url ?? '/', issuer);
    return req.method === 'POST' ? provider.handleSignInSubmit(req, res, url) : provider.handleSignInPage(req, res, url);
  };
}

/**
 * A refused request (an OAuthError: body too large, wrong content type) keeps its own status; anything
 * else is our failure and says nothing internal on the wire.
 */
function requestFailed(logger: Logger): (error: unknown, req: IncomingMessage, res: ServerResponse) => void {
  return (error, req, res) => {
    const path = req.url?.split('?')[0];
    if (error instanceof OAuthError)
      logger.warn({ method: req.method, path, error: error.error, detail: error.detail ?? error.description }, 'request refused');
    else logger.error({ err: error, method: req.method, path }, 'request failed');
    if (!res.headersSent) sendOAuthError(res, error);
    else res.destroy();
  };
}

async function listen(server: Server, address: GatewayConfig['listen']): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  return `http://${host}:${bound.port}`;
}

/** Stops taking requests first, then closes the rooms, then what they stand on. */
async function shutDown(server: Server, foundations: Foundations, rooms: Rooms, logger: Logger): Promise<void> {
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
  await rooms.gateway.close();
  await rooms.authorization.close();
  await rooms.identity.outboundFetch.close();
  await rooms.upstreams.close();
  foundations.stopSweeper();
  foundations.revocations.stop();
  await foundations.stopSigningKeys();
  await foundations.storage.close();
  logger.flush?.();
}
