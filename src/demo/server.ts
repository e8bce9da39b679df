/**
 * A small MCP server shipped with the product, so that `npm start` has something to protect and the
 * tests have a real upstream. Built with the official SDK over Streamable HTTP with stateful sessions
 * (`Mcp-Session-Id`) and the GET SSE stream.
 *
 * Tools:
 * - `echo` returns its text;
 * - `whoami` returns the identity headers the gateway handed over and whether an `Authorization` or
 *   `Cookie` header arrived (it must not: MCP forbids token passthrough);
 * - `slow_count` counts with pauses, sending a progress notification and a log message per step over
 *   the request's SSE stream, which shows that events pass through the gateway unbuffered.
 *
 * Standalone: `npx node src/demo/server.ts --port 3001 [--host 127.0.0.1]`.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';
import { type Clock, systemClock } from '../core/clock.ts';
import { JsonRpcCode, sendJsonRpcError } from '../core/jsonrpc.ts';

/** Where the MCP endpoint lives on the demo server. */
export const DEMO_MCP_PATH = '/mcp';

/** Sessions kept at most by default; the oldest is closed first, so a noisy client cannot exhaust memory. */
const MAX_SESSIONS = 1_000;

/**
 * A session nobody has sent a request to for this long is closed (its McpServer and transport freed):
 * clients that vanish without a DELETE, which is most of them, would otherwise hold memory until the
 * cap. A client that comes back gets 404 and starts a new session (MCP Transports, "Session Management").
 */
const SESSION_IDLE_MS = 15 * 60_000;

/**
 * Headers `whoami` reports: the gateway's documented identity header names (`x-user-*`) and the
 * conventions of other auth proxies, so the demo stays useful whatever names an operator configures.
 */
function isIdentityHeader(name: string): boolean {
  return name.startsWith('x-user-') || name.startsWith('x-forwarded-') || name.startsWith('x-auth-request-') || name === 'remote-user';
}

/** Builds one MCP server instance (one per session, as the SDK's stateful transport expects). */
export function createDemoMcpServer(): McpServer {
  const server = new McpServer({ name: 'mcp-oauth-gateway-demo', version: '0.1.0' }, { capabilities: { logging: {} } });

  server.registerTool('echo', { description: 'Returns the text it was given.', inputSchema: { text: z.string() } }, async ({ text }) => ({
    content: [{ type: 'text', text }],
  }));

  server.registerTool('whoami', { description: 'Shows the identity the gateway handed over to this MCP server.' }, async (extra) => {
    const headers = extra.requestInfo?.headers ?? {};
    const identity: Record<string, string> = {};
    for (const [name, value] of Object.entries(headers)) {
      if (value !== undefined && isIdentityHeader(name.toLowerCase())) identity[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
    }
    const report = {
      identity,
      authorizationHeaderPresent: headers.authorization !== undefined || headers.Authorization !== undefined,
      cookieHeaderPresent: headers.cookie !== undefined || headers.Cookie !== undefined,
    };
    return { content: [{ type: 'text', text: JSON.stringify(report) }], structuredContent: report };
  });

  server.registerTool(
    'slow_count',
    {
      description: 'Counts to `count`, pausing `intervalMs` between steps and streaming a progress notification and a log message per step.',
      inputSchema: {
        count: z.number().int().min(1).max(50).default(5),
        intervalMs: z.number().int().min(0).max(5_000).default(200),
      },
    },
    async ({ count, intervalMs }, extra) => {
      const progressToken = extra._meta?.progressToken;
      for (let step = 1; step <= count; step++) {
        await sleep(intervalMs, undefined, { signal: extra.signal });
        if (progressToken !== undefined) {
          await extra.sendNotification({ method: 'notifications/progress', params: { progressToken, progress: step, total: count, message: `step ${step}` } });
        }
        await extra.sendNotification({ method: 'notifications/message', params: { level: 'info', logger: 'slow_count', data: `step ${step} of ${count}` } });
      }
      return { content: [{ type: 'text', text: `Counted to ${count}.` }] };
    },
  );

  return server;
}

export interface DemoServer {
  /** The MCP endpoint, e.g. `http://127.0.0.1:3001/mcp`. */
  url: string;
  close(): Promise<void>;
}

export interface DemoServerOptions {
  host?: string;
  port?: number;
  /** Sessions kept at most (1,000 by default). */
  maxSessions?: number;
  /** Idle time after which a session is closed (15 minutes by default). */
  sessionIdleMs?: number;
  /** Decides when a session is idle; tests pass one they can move. */
  clock?: Clock;
}

/** Starts the demo server; `port: 0` picks a free port. */
export async function startDemoServer(options: DemoServerOptions = {}): Promise<DemoServer> {
  const sessions = new SessionRegistry(options.maxSessions ?? MAX_SESSIONS, options.sessionIdleMs ?? SESSION_IDLE_MS, options.clock ?? systemClock);
  // Idle sessions are also swept when a session opens; the timer covers a server that sees no new ones.
  const sweeper = setInterval(() => sessions.closeIdle(), Math.min(options.sessionIdleMs ?? SESSION_IDLE_MS, 60_000));
  sweeper.unref();
  const server = createServer((req, res) => {
    handleRequest(req, res, sessions).catch(() => {
      // Mid-stream the status line is gone: cutting the connection tells the client the answer is incomplete.
      if (res.headersSent) res.destroy();
      else sendJsonRpcError(res, 500, JsonRpcCode.INTERNAL_ERROR, 'Internal error');
    });
  });
  const address = await listen(server, options.host ?? '127.0.0.1', options.port ?? 0);
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${urlHost}:${address.port}${DEMO_MCP_PATH}`,
    async close() {
      clearInterval(sweeper);
      await sessions.closeAll();
      await closeServer(server);
    },
  };
}

/** The open MCP sessions by `Mcp-Session-Id`, at most `max` (the oldest is closed first), idle ones closed. */
class SessionRegistry {
  readonly #transports = new Map<string, StreamableHTTPServerTransport>();
  /** When each session last saw a request. */
  readonly #lastSeen = new Map<string, number>();
  readonly #max: number;
  readonly #idleMs: number;
  readonly #clock: Clock;

  constructor(max: number, idleMs: number, clock: Clock) {
    this.#max = max;
    this.#idleMs = idleMs;
    this.#clock = clock;
  }

  get(id: string): StreamableHTTPServerTransport | undefined {
    const transport = this.#transports.get(id);
    if (transport !== undefined) this.#lastSeen.set(id, this.#clock.now());
    return transport;
  }

  add(id: string, transport: StreamableHTTPServerTransport): void {
    this.closeIdle();
    if (this.#transports.size >= this.#max) {
      const oldest = this.#transports.values().next();
      if (!oldest.done) void oldest.value.close();
    }
    this.#transports.set(id, transport);
    this.#lastSeen.set(id, this.#clock.now());
  }

  remove(id: string): void {
    this.#transports.delete(id);
    this.#lastSeen.delete(id);
  }

  /** Closes every session idle for longer than the limit (closing removes it, through its onclose). */
  closeIdle(): void {
    const cutoff = this.#clock.now() - this.#idleMs;
    for (const [id, seen] of this.#lastSeen) {
      if (seen > cutoff) continue;
      const transport = this.#transports.get(id);
      this.remove(id);
      if (transport !== undefined) void transport.close();
    }
  }

  async closeAll(): Promise<void> {
    const transports = [...this.#transports.values()];
    this.#transports.clear();
    this.#lastSeen.clear();
    await Promise.allSettled(transports.map((transport) => transport.close()));
  }
}

/**
 * One HTTP request: the MCP endpoint only, a known session's requests to its transport, and a
 * request without a session opens one.
 */
async function handleRequest(req: IncomingMessage, res: ServerResponse, sessions: SessionRegistry): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (path !== DEMO_MCP_PATH) {
    sendJsonRpcError(res, 404, JsonRpcCode.TRANSPORT_REFUSED, 'Not found');
    return;
  }
  const sessionId = req.headers['mcp-session-id'];
  if (typeof sessionId === 'string') {
    const transport = sessions.get(sessionId);
    // MCP Transports, "Session Management": an unknown session gets 404 so the client starts anew.
    if (!transport) sendJsonRpcError(res, 404, JsonRpcCode.SESSION_NOT_FOUND, 'Session not found');
    else await transport.handleRequest(req, res);
    return;
  }
  if (req.method !== 'POST') {
    sendJsonRpcError(res, 400, JsonRpcCode.TRANSPORT_REFUSED, 'Bad Request: Mcp-Session-Id header is required');
    return;
  }
  await openSession(req, res, sessions);
}

/** A POST without a session must be `initialize`; the SDK's transport answers 400 to anything else. */
async function openSession(req: IncomingMessage, res: ServerResponse, sessions: SessionRegistry): Promise<void> {
  const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
    sessionIdGenerator: randomUUID,
    onsessioninitialized: (id) => sessions.add(id, transport),
    onsessionclosed: (id) => sessions.remove(id),
  });
  transport.onclose = () => {
    if (transport.sessionId) sessions.remove(transport.sessionId);
  };
  await createDemoMcpServer().connect(transport);
  await transport.handleRequest(req, res);
}

function listen(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    // `exclusive`: under `workers: N` each worker's embedded demo server has a port of its own; a
    // shared one would hand one session's requests to another worker's server.
    server.listen({ port, host, exclusive: true }, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

/** Stops listening and cuts the connections still open (SSE streams would otherwise hold it open). */
function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '3001' },
      host: { type: 'string', default: '127.0.0.1' },
      'max-sessions': { type: 'string', default: String(MAX_SESSIONS) },
    },
  });
  const demo = await startDemoServer({ host: values.host, port: Number(values.port), maxSessions: Number(values['max-sessions']) });
  process.stdout.write(`demo MCP server listening on ${demo.url}\n`);
  const stop = (): void => {
    void demo.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
