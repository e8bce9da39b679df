/**
 * The older HTTP+SSE transport (MCP 2024-11-05) on the bridge side, for clients that still speak it:
 * `GET <route>/sse` opens a long-lived SSE stream whose first event names the URI for POSTs, and
 * every message from the server travels on that stream; `POST <route>/messages?sessionId=…` carries
 * the client's messages and is answered 202.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { JsonRpcCode, sendJsonRpcError } from '../core/jsonrpc.ts';
import { markEventStream } from '../observability/mcp-requests.ts';
import type { ClientSession, StdioServerConnection } from './connection.ts';
import { readClientMessages } from './http.ts';

/** Comment lines keep idle proxies from cutting the stream (HTML Living Standard, Server-sent events). */
const KEEP_ALIVE_MS = 25_000;

/** One HTTP+SSE session: its stream carries everything. */
export class LegacySseSession implements ClientSession {
  readonly id = randomUUID();
  readonly userId: string;
  readonly connection: StdioServerConnection;
  readonly res: ServerResponse;
  capabilities: Record<string, unknown> | undefined;
  /** By the connection's clock, like every activity stamp of the stdio bridge. */
  lastActive: number;

  constructor(userId: string, connection: StdioServerConnection, res: ServerResponse) {
    this.userId = userId;
    this.connection = connection;
    this.res = res;
    this.lastActive = connection.clock.now();
  }

  deliver(message: JSONRPCMessage): void {
    if (this.canReceiveUnsolicited()) this.res.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
  }

  canReceiveUnsolicited(): boolean {
    return !this.res.writableEnded && !this.res.destroyed;
  }
}

export interface LegacyContext {
  userId: string;
  sessions: Map<string, LegacySseSession>;
  connectionFor: (userId: string) => StdioServerConnection;
  /** Largest POST body read from the client. */
  maxBodyBytes: number;
  refused: (reason: string) => void;
  opened: (session: { id: string }) => void;
  closed: (session: { id: string }) => void;
}

/** GET /sse: opens a session and its stream. */
export function openLegacyStream(res: ServerResponse, ctx: LegacyContext): void {
  const session = new LegacySseSession(ctx.userId, ctx.connectionFor(ctx.userId), res);
  ctx.sessions.set(session.id, session);
  session.connection.attach(session);
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache, no-transform', 'x-accel-buffering': 'no' });
  markEventStream(res);
  // The endpoint is a relative reference: it resolves against the SSE URL the client used
  // (RFC 3986 §5.2; the SDK's SSEClientTransport does `new URL(data, sseUrl)`), so `<route>/sse`
  // leads to `<route>/messages?sessionId=…` under whatever route the gateway serves this server on.
  // No forwarded-prefix header is trusted: a client could send one to point its endpoint elsewhere.
  res.write(`event: endpoint\ndata: messages?sessionId=${session.id}\n\n`);
  ctx.opened(session);
  const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), KEEP_ALIVE_MS);
  keepAlive.unref();
  res.once('close', () => {
    clearInterval(keepAlive);
    ctx.sessions.delete(session.id);
    session.connection.detach(session);
    ctx.closed(session);
  });
}

/** POST /messages?sessionId=: the client's messages for its session. */
export async function postLegacyMessage(req: IncomingMessage, res: ServerResponse, sessionId: string | null, ctx: LegacyContext): Promise<void> {
  const session = sessionId === null ? undefined : ctx.sessions.get(sessionId);
  // Another user's session is answered exactly like an unknown one.
  if (session === undefined || session.userId !== ctx.userId) {
    req.resume();
    sendJsonRpcError(res, 404, JsonRpcCode.SESSION_NOT_FOUND, 'Session not found');
    return;
  }
  const parsed = await readClientMessages(req, res, ctx);
  if (!parsed) return;
  session.lastActive = session.connection.clock.now();
  res.writeHead(202, { 'content-type': 'text/plain' });
  res.end('Accepted');
  for (const message of parsed.messages) session.connection.fromClient(session, message);
}
