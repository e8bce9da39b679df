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
import { ErrorCode, hasErrorCode } from './core/errors.ts';
import { canonicalizeResource, resourceFor } from './core/resource-uri.ts';
import { demoIdentityProvider, demoServer } from './demo/embedded-default.ts';
import { createForwardAuth, type ForwardAuth } from './forward-auth/index.ts';
import { clientAddressResolver } from './http/client-address.ts';
import { OAuthError, sendOAuthError } from './http/errors.ts';
import { handleLiveness, Readiness, type ReadinessCheck } from './http/health.ts';
import { type DrainOutcome, InFlightRequests } from './http/in-flight.ts';
import { type OpsListener, startOpsListener } from './http/ops-listener.ts';
import { createOutboundFetch, type OutboundFetch } from './http/outbound.ts';
import { createRouter, type RouteHandler } from './http/router.ts';
import type { HandlerName } from './http/routes.ts';
import { withGithubOrganizationDefaults } from './idp/github.ts';
import { createIdpTokenSource, type IdpTokenSource } from './idp/idp-tokens.ts';
import { createIdentityProviders } from './idp/index.ts';
import type { LocalIdentityProvider } from './idp/local.ts';
import type { IdentityProvider } from './idp/types.ts';
import { createAuditLogger, startAuditFlush } from './observability/audit.ts';
import { countingEvents } from './observability/counted-events.ts';
import { createLogger, type Logger } from './observability/logger.ts';
import { McpRequestRecorder } from './observability/mcp-requests.ts';
import { GatewayMetrics, METRICS_CONTENT_TYPE } from './observability/metrics.ts';
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
  /** The metrics listener's address (`metrics.listen`), when metrics are enabled and not on the main listener. */
  opsUrl: string | undefined;
  readiness: Readiness;
  /** Stops at once: connections cut, rooms closed (tests, and the end of `drain`). */
  close(): Promise<void>;
  /**
   * The graceful shutdown (SIGTERM): readiness fails, the listener stops accepting, requests in flight
   * finish within `shutdown.drainSeconds` (SSE streams ended cleanly), then everything is closed.
   */
  drain(): Promise<DrainOutcome>;
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

/** Metrics, readiness and the drain (docs/operations.md). */
interface Operations {
  metrics: GatewayMetrics | undefined;
  mcpRequests: McpRequestRecorder | undefined;
  inFlight: InFlightRequests;
}

export async function startGateway(config: GatewayConfig, options: StartOptions = {}): Promise<RunningGateway> {
  const operations = createOperations(config);
  const audit = options.audit ?? createAuditLogger(config.audit.destination);
  const stopAuditFlush = startAuditFlush(audit);
  const baseLogger = options.logger ?? createLogger(config.log.level, undefined, audit);
  // Authorization decisions are counted from the audit events they log (src/observability/counted-events.ts).
  const logger = operations.metrics ? countingEvents(baseLogger, (fields) => operations.metrics?.countEvent(fields)) : baseLogger;
  const announce = options.announce ?? ((line: string) => process.stdout.write(`${line}\n`));
  const foundations = await openFoundations(config, logger, options.clock ?? systemClock);
  const rooms = await createRooms(config, foundations, { logger, audit }, announce, operations);
  const readiness = readinessOf(foundations, rooms, operations);
  operations.metrics?.setSources(metricSources(rooms));

  const router = createRouter({ mcp: rooms.gateway.serveMcp, handlers: routeHandlers(config, rooms, readiness, operations), onError: requestFailed(logger) });
  const server = createServer(operations.inFlight.track(router));
  // Longer than common load balancer idle timeouts, so the proxy side closes first.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  const listenUrl = await listen(server, config.listen);
  let ops: OpsListener | undefined;
  try {
    ops = await startOps(config, operations, readiness, logger);
  } catch (error) {
    // The metrics port taken, say: nothing may keep running half-started.
    await shutDown(server, foundations, rooms, logger);
    throw error;
  }

  const resources = rooms.resources.map((r) => r.resource);
  logger.info({ listen: listenUrl, issuer: config.publicUrl, servers: resources, storage: config.storage.type }, 'gateway listening');
  announce(`mcp-oauth-gateway listening on ${listenUrl}; issuer ${config.publicUrl}; MCP servers: ${resources.join(', ')}`);

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= shutDown(server, foundations, rooms, logger).finally(() => {
      stopAuditFlush();
      audit.flush();
      return ops?.close();
    }));
  let draining: Promise<DrainOutcome> | undefined;
  return {
    listenUrl,
    server,
    storage: foundations.storage,
    logger,
    revocations: foundations.revocations,
    grants: rooms.authorization.grants,
    opsUrl: ops?.url,
    readiness,
    close,
    drain: () => (draining ??= drain(server, operations.inFlight, config.shutdown.drainSeconds * 1000, logger, close)),
  };
}

async function openFoundations(config: GatewayConfig, logger: Logger, clock: Clock): Promise<Foundations> {
  const storage = await openStorage(config, { clock, log: logger });
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
  operations: Operations,
): Promise<Rooms> {
  const { storage, clock } = foundations;
  const { logger, audit } = logs;
  const servers: ServerConfig[] = config.servers ?? [demoServer()];
  const resources = protectedResources(config, servers);
  const identity = await createIdentityRoom(config, foundations, logger, announce, operations);
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
    requests: operations.mcpRequests,
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
    // Session owners are shared through storage, so every replica refuses a session to a stranger.
    storage,
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
    // `toolAccess` scopes are grantable for the server but never needed to connect (docs/policy.md).
    scopes: [...new Set([...server.scopes, ...(server.toolAccess?.rules.flatMap((rule) => rule.scopes) ?? [])])],
    requiredScopes: server.scopes,
    scopeDescriptions: server.scopeDescriptions,
    access: { gateway: config.access, server: server.access },
    requiresIdpToken: Boolean(server.idpToken?.header ?? server.idpToken?.env),
  }));
}

/** The identity providers (the demo account when none is configured) and the IdP tokens they hand out. */
async function createIdentityRoom(
  config: GatewayConfig,
  foundations: Foundations,
  logger: Logger,
  announce: (line: string) => void,
  operations: Operations,
): Promise<IdentityRoom> {
  const { storage } = foundations;
  // Access rules naming GitHub orgs or teams need the membership read at login.
  const providerConfigs = withGithubOrganizationDefaults(config.identityProviders ?? [await demoIdentityProvider(storage, announce)], config);
  const metrics = operations.metrics;
  const outboundFetch = createOutboundFetch({
    extraCaPem: foundations.extraCaPem,
    timeoutMs: 10_000,
    observe: metrics && ((url, seconds, outcome) => metrics.observeIdpCall(url, seconds, outcome)),
  });
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
function routeHandlers(config: GatewayConfig, rooms: Rooms, readiness: Readiness, operations: Operations): Record<HandlerName, RouteHandler> {
  const metrics = config.metrics.onMainListener ? operations.metrics : undefined;
  return {
    ...rooms.authorization.handlers,
    ...rooms.gateway.handlers,
    ...rooms.forwardAuth.handlers,
    localSignIn: localSignIn(config.publicUrl, rooms.identity.local),
    health: handleLiveness,
    readiness: readiness.handle,
    // Not on this listener unless the operator asked (src/config/schema/operations.ts says why): a 404.
    metrics: metrics ? metricsHandler(metrics) : () => false,
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
 * A refused request (an OAuthError: body too large, wrong content type) keeps its own status; storage
 * that cannot be reached is a 503 (src/http/errors.ts); anything else is our failure and says nothing
 * internal on the wire.
 */
function requestFailed(logger: Logger): (error: unknown, req: IncomingMessage, res: ServerResponse) => void {
  return (error, req, res) => {
    const path = req.url?.split('?')[0];
    if (error instanceof OAuthError)
      logger.warn({ method: req.method, path, error: error.error, detail: error.detail ?? error.description }, 'request refused');
    // An outage, not a bug: one line per request, no stack (the storage logs the outage itself once).
    else if (hasErrorCode(error, ErrorCode.STORAGE_UNAVAILABLE))
      logger.warn({ method: req.method, path, reason: (error as Error).message }, 'storage unavailable');
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

// ---- Operations: metrics, readiness and the drain (docs/operations.md) ----

function createOperations(config: GatewayConfig): Operations {
  const inFlight = new InFlightRequests();
  if (!config.metrics.enabled) return { metrics: undefined, mcpRequests: undefined, inFlight };
  const mcpRequests = new McpRequestRecorder();
  const servers = (config.servers ?? [demoServer()]).map((server) => server.name);
  const providers = (config.identityProviders ?? []).map((provider) => provider.id);
  // The demo account's local provider when none is configured (src/demo/embedded-default.ts).
  if (config.identityProviders === undefined) providers.push('local');
  return { metrics: new GatewayMetrics({ mcp: mcpRequests, providers, servers }), mcpRequests, inFlight };
}

/** Ready: storage answers, signing keys are loaded, each IdP's discovery loaded once; never while draining. */
function readinessOf(foundations: Foundations, rooms: Rooms, operations: Operations): Readiness {
  const checks: ReadinessCheck[] = [
    { name: 'storage', run: () => foundations.storage.ping() },
    {
      name: 'keys',
      run: () => {
        if (rooms.authorization.publicKeys().length === 0) throw new Error('no signing key');
      },
    },
    ...rooms.identity.all.map((idp) => ({ name: `idp:${idp.id}`, run: () => idp.ready?.() })),
  ];
  return new Readiness({ checks, draining: () => operations.inFlight.draining, clock: foundations.clock });
}

function metricSources(rooms: Rooms): Parameters<GatewayMetrics['setSources']>[0] {
  return {
    tokenCache: () => rooms.gateway.tokenCacheStats(),
    upstreamPools: () => rooms.gateway.upstreamPoolStats(),
    stdioProcesses: () =>
      rooms.resources.flatMap(({ name }) => {
        const stdio = rooms.upstreams.get(name)?.stdio;
        return stdio ? [{ server: name, processes: stdio.supervisor.pids().size }] : [];
      }),
  };
}

function metricsHandler(metrics: GatewayMetrics): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (_req, res) => {
    const body = await metrics.render();
    res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
}

/** The separate metrics listener, unless metrics are off or served on the main listener. */
async function startOps(config: GatewayConfig, operations: Operations, readiness: Readiness, logger: Logger): Promise<OpsListener | undefined> {
  const metrics = operations.metrics;
  if (metrics === undefined || config.metrics.onMainListener) return undefined;
  const ops = await startOpsListener({
    ...config.metrics.listen,
    metrics: metricsHandler(metrics),
    readiness: readiness.handle,
    onError: (error) => logger.error({ err: error }, 'metrics listener request failed'),
  });
  logger.info({ listen: ops.url }, 'metrics listening');
  return ops;
}

/**
 * SIGTERM: readiness fails at once (it reads the drain flag), the listener stops accepting, requests
 * in flight finish, then the rooms close (stdio children stopped, pools closed) and the logs are
 * flushed, all within `drainMs`; the rooms get the last part of it.
 */
async function drain(server: Server, inFlight: InFlightRequests, drainMs: number, logger: Logger, close: () => Promise<void>): Promise<DrainOutcome> {
  const started = Date.now();
  const closeReserveMs = Math.min(3_000, drainMs / 4);
  const draining = inFlight.drain(started + drainMs - closeReserveMs);
  // Node closes the idle keep-alive connections with the listener; busy ones close after their response.
  server.close();
  logger.info({ event: 'shutdown.draining', inFlight: inFlight.size, drainSeconds: drainMs / 1000 }, 'draining requests in flight');
  const outcome = await draining;
  logger.info({ event: 'shutdown.drained', ...outcome, ms: Date.now() - started }, 'requests drained; closing');
  await close();
  return outcome;
}
