/**
 * The HTTP side of a stdio server. The gateway calls `serve` in-process after the token check, with
 * the user id from the token, for the route's sub-paths:
 * - `` or `/`: Streamable HTTP (2025-03-26 and later; streamable.ts);
 * - `/sse` and `/messages?sessionId=`: the older HTTP+SSE transport (2024-11-05; legacy-sse.ts).
 * A session stays bound to the user that created it.
 *
 * With `listenOnLoopback` (tests), the same is served on a loopback port under `/mcp`. Every such
 * request must carry the per-boot bridge secret (compared in constant time; anything else gets 403),
 * so another local process cannot reach a stdio server as some user, and names its user in a header.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { JsonRpcCode, JsonRpcFailure, sendJsonRpcError } from '../core/jsonrpc.ts';
import type { InProcessRequest } from '../core/message-screen.ts';
import type { Logger } from '../observability/logger.ts';
import { type LegacyContext, type LegacySseSession, openLegacyStream, postLegacyMessage } from './legacy-sse.ts';
import { handleStreamable, type StreamableContext, type StreamableSession } from './streamable.ts';
import type { StdioSupervisor } from './supervisor.ts';

/** Request header carrying the per-boot bridge secret (set by the gateway, never by clients). */
export const BRIDGE_SECRET_HEADER = 'x-mcp-gateway-bridge-secret';
/** Request header carrying the percent-encoded user id (set by the gateway after the token check). */
export const BRIDGE_USER_HEADER = 'x-mcp-gateway-user';
export const BRIDGE_BASE_PATH = '/mcp';

export interface StdioBridgeOptions {
  name: string;
  supervisor: StdioSupervisor;
  logger: Logger;
  /** Forget a Streamable HTTP session idle this long with no stream open. */
  sessionIdleTimeoutMs: number;
  /** Largest request body read from a client. */
  maxBodyBytes: number;
  /**
   * Also serve over HTTP on a loopback port, guarded by a per-boot secret header (for tests and tools
   * that drive the bridge from outside). The gateway itself calls `serve` in-process and needs no port.
   */
  listenOnLoopback?: boolean;
}

export interface StdioBridge {
  /** The Streamable HTTP endpoint, e.g. `http://127.0.0.1:41234/mcp`; empty unless `listenOnLoopback`. */
  url: string;
  /** The headers the gateway must add to each request of `userId` (and strip from clients). */
  headersFor(userId: string): Record<string, string>;
  headerNames: readonly string[];
  /**
   * The same as an HTTP request to `url` + `subPath`, for a user the gateway has already authenticated,
   * handed over in-process: no loopback hop, no second HTTP parse (the gateway's hot path for stdio).
   */
  serve(req: IncomingMessage, res: ServerResponse, userId: string, subPath: string, search: string, extras?: InProcessRequest): void;
  /** Number of open client sessions (tests, diagnostics). */
  sessionCount(): number;
  /**
   * Forgets abandoned Streamable HTTP sessions, then stops idle per-user processes, judged by the
   * supervisor's clock. Interval timers call both parts; a test calls this after moving the clock.
   */
  sweepIdle(): Promise<void>;
  close(): Promise<void>;
}

export async function startStdioBridge(options: StdioBridgeOptions): Promise<StdioBridge> {
  const { supervisor } = options;
  const sessions = new BridgeSessions(options);
  const secret = randomBytes(32).toString('base64url');
  const loopback = options.listenOnLoopback ? await listenOnLoopback({ ...options, sessions, secretDigest: sha256(secret) }) : undefined;
  const sweeper = setInterval(() => sessions.forgetIdle(), sweepIntervalMs(options.sessionIdleTimeoutMs));
  sweeper.unref();
  // A plain object of closures rather than the class: callers hold members on their own
  // (`closers.push(stdio.close)`), which a method needing `this` would not survive.
  return {
    url: loopback?.url ?? '',
    headerNames: [BRIDGE_SECRET_HEADER, BRIDGE_USER_HEADER],
    headersFor: (userId) => ({ [BRIDGE_SECRET_HEADER]: secret, [BRIDGE_USER_HEADER]: encodeURIComponent(userId) }),
    serve: (req, res, userId, subPath, search, extras) => sessions.serve(req, res, userId, subPath, search, extras),
    sessionCount: () => sessions.count(),
    sweepIdle() {
      sessions.forgetIdle();
      return supervisor.sweepIdle();
    },
    async close() {
      clearInterval(sweeper);
      sessions.close();
      await loopback?.close();
      await supervisor.close();
    },
  };
}

/** Often enough that an abandoned session is not kept much past its timeout, never busier than once a second. */
function sweepIntervalMs(sessionIdleTimeoutMs: number): number {
  return Math.max(1000, Math.min(60_000, sessionIdleTimeoutMs / 4));
}

/** The client sessions of one bridge, both transports, and the requests served against them. */
class BridgeSessions {
  readonly #options: StdioBridgeOptions;
  readonly #streamable = new Map<string, StreamableSession>();
  readonly #legacy = new Map<string, LegacySseSession>();

  constructor(options: StdioBridgeOptions) {
    this.#options = options;
  }

  /** One request of an authenticated user; failures are answered here, never thrown to the caller. */
  serve(req: IncomingMessage, res: ServerResponse, userId: string, subPath: string, search: string, extras?: InProcessRequest): void {
    this.serveUser(req, res, userId, subPath, search, extras).catch((error: unknown) => this.failed(res, error));
  }

  /**
   * One request of `userId`, already authenticated, by its path below the server's route: `` or `/`
   * (Streamable HTTP), `/sse` and `/messages` (the 2024-11-05 HTTP+SSE transport).
   */
  async serveUser(req: IncomingMessage, res: ServerResponse, userId: string, subPath: string, search: string, extras?: InProcessRequest): Promise<void> {
    if (subPath === '' || subPath === '/')
      await handleStreamable(req, res, {
        ...this.#context(userId, 'streamable-http'),
        sessions: this.#streamable,
        clientId: extras?.clientId,
        screen: extras?.screen,
      });
    // The HTTP+SSE transport answers on a separate stream, unbound to the request that asked, so its
    // answers could not be screened: a server with `toolAccess` speaks Streamable HTTP only (docs/policy.md).
    else if (extras?.screen !== undefined) sendJsonRpcError(res, 404, JsonRpcCode.TRANSPORT_REFUSED, 'Not found');
    else if (subPath === '/sse' && req.method === 'GET') openLegacyStream(res, { ...this.#context(userId, 'sse'), sessions: this.#legacy });
    else if (subPath === '/messages' && req.method === 'POST')
      await postLegacyMessage(req, res, new URLSearchParams(search).get('sessionId'), { ...this.#context(userId, 'sse'), sessions: this.#legacy });
    else if (subPath === '/sse' || subPath === '/messages') sendJsonRpcError(res, 405, JsonRpcCode.TRANSPORT_REFUSED, 'Method not allowed');
    else sendJsonRpcError(res, 404, JsonRpcCode.TRANSPORT_REFUSED, 'Not found');
  }

  /** A known refusal (JsonRpcFailure) is told to the client; anything else is logged and kept private. */
  failed(res: ServerResponse, error: unknown): void {
    const known = error instanceof JsonRpcFailure;
    if (!known) this.#options.logger.error({ err: error, server: this.#options.name }, 'stdio bridge request failed');
    if (res.headersSent) res.destroy();
    else if (known) sendJsonRpcError(res, 503, error.rpcCode, error.message);
    else sendJsonRpcError(res, 500, JsonRpcCode.INTERNAL_ERROR, 'Internal error');
  }

  count(): number {
    return this.#streamable.size + this.#legacy.size;
  }

  /**
   * Streamable HTTP sessions a client abandoned without DELETE (MCP Transports, Session Management),
   * judged by the supervisor's clock, which stamped their activity.
   */
  forgetIdle(): void {
    const { supervisor, sessionIdleTimeoutMs, logger, name } = this.#options;
    const cutoff = supervisor.clock.now() - sessionIdleTimeoutMs;
    for (const session of this.#streamable.values()) {
      if (session.closed || (session.idle && session.lastActive < cutoff)) {
        this.#streamable.delete(session.id);
        if (!session.closed)
          logger.info({ event: 'stdio.session_expired', server: name, userId: session.userId, session: session.id }, 'idle stdio bridge session forgotten');
        session.close();
      }
    }
  }

  close(): void {
    for (const session of this.#streamable.values()) session.close();
    this.#streamable.clear();
    for (const session of this.#legacy.values()) session.res.end();
  }

  /** What both transports need for one request of `userId`, except their own session map. */
  #context(userId: string, transport: string): Omit<StreamableContext, 'sessions'> & Omit<LegacyContext, 'sessions'> {
    const { supervisor, logger, name } = this.#options;
    return {
      userId,
      connectionFor: (id) => supervisor.connectionFor(id),
      maxBodyBytes: this.#options.maxBodyBytes,
      refused: (reason) => logger.warn({ event: 'stdio.bad_request', server: name, userId, reason }, 'stdio bridge refused a client message'),
      opened: (session) => logger.info({ event: 'stdio.session_opened', server: name, userId, session: session.id, transport }, 'stdio bridge session opened'),
      closed: (session) => logger.info({ event: 'stdio.session_closed', server: name, userId, session: session.id }, 'stdio bridge session closed'),
      streamOpened: (session) =>
        logger.debug({ event: 'stdio.stream_opened', server: name, userId, session: session.id }, 'stdio bridge session opened its GET stream'),
      answerDropped: (session) =>
        logger.debug({ event: 'stdio.answer_dropped', server: name, userId, session: session.id }, 'answer for a client that disconnected dropped'),
    };
  }
}

/** What the loopback listener needs: the sessions it serves into and the digest of the per-boot secret. */
interface LoopbackGate {
  sessions: BridgeSessions;
  secretDigest: Buffer;
  logger: Logger;
  name: string;
}

/** Serves the bridge on a loopback port under BRIDGE_BASE_PATH (tests and outside tools). */
async function listenOnLoopback(gate: LoopbackGate): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    handleLoopback(req, res, gate).catch((error: unknown) => gate.sessions.failed(res, error));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${BRIDGE_BASE_PATH}`,
    async close() {
      if (!server.listening) return;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

/** A loopback request: the secret first, then the user it names, then the path below BRIDGE_BASE_PATH. */
async function handleLoopback(req: IncomingMessage, res: ServerResponse, gate: LoopbackGate): Promise<void> {
  if (!presentsSecret(req, gate.secretDigest)) {
    gate.logger.warn(
      { event: 'stdio.bridge_refused', server: gate.name, path: req.url?.split('?')[0] },
      'stdio bridge request without the gateway secret refused',
    );
    sendJsonRpcError(res, 403, JsonRpcCode.FORBIDDEN, 'Forbidden');
    return;
  }
  const userId = userOf(req);
  if (userId === undefined) {
    sendJsonRpcError(res, 400, JsonRpcCode.TRANSPORT_REFUSED, 'Bad Request: no user');
    return;
  }
  const url = new URL(req.url ?? '/', 'http://bridge');
  if (url.pathname !== BRIDGE_BASE_PATH && !url.pathname.startsWith(`${BRIDGE_BASE_PATH}/`)) {
    sendJsonRpcError(res, 404, JsonRpcCode.TRANSPORT_REFUSED, 'Not found');
    return;
  }
  await gate.sessions.serveUser(req, res, userId, url.pathname.slice(BRIDGE_BASE_PATH.length), url.search.slice(1));
}

function presentsSecret(req: IncomingMessage, secretDigest: Buffer): boolean {
  const presented = req.headers[BRIDGE_SECRET_HEADER];
  if (typeof presented !== 'string') return false;
  // Equal-length digests: timingSafeEqual needs equal lengths, and the length leaks nothing.
  return timingSafeEqual(sha256(presented), secretDigest);
}

/** The percent-encoded user id the gateway put in BRIDGE_USER_HEADER; undefined when absent or malformed. */
function userOf(req: IncomingMessage): string | undefined {
  const value = req.headers[BRIDGE_USER_HEADER];
  if (typeof value !== 'string' || value === '') return undefined;
  try {
    return decodeURIComponent(value);
  } catch {
    return undefined;
  }
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
