/**
 * The Streamable HTTP transport (MCP Transports, 2025-03-26 and later) on the bridge side, for one
 * client session: POST carries client messages, its response carries the answers (JSON, or an SSE
 * stream when the server has more to say first), GET opens the stream for unsolicited messages,
 * DELETE ends the session.
 *
 * Written on node:http directly rather than with the SDK's server transport: every call crosses
 * this hop, and answering a plain request with one `application/json` write (SSE only when progress,
 * a server request or a notification comes first) halves the writes per call and skips a Web
 * Streams adapter (docs/stdio.md, bench/stdio.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';
import { SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js';
import type { ClientSession, StdioServerConnection } from './connection.ts';
import { readClientMessages } from './http.ts';
import { idKey, isRequest, isResponse, JsonRpcCode, sendJsonRpcError } from '../core/jsonrpc.ts';

const SSE_HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache, no-transform', 'x-accel-buffering': 'no' };

/** The response to one POST that carried requests: collects their answers, upgrading to SSE if needed. */
class PostExchange {
  readonly res: ServerResponse;
  readonly #waiting: Set<string>;
  readonly #batch: boolean;
  readonly #canStream: boolean;
  readonly #jsonOk: boolean;
  readonly #headers: Record<string, string>;
  #responses: JSONRPCMessage[] = [];
  #streaming = false;

  constructor(res: ServerResponse, requestIds: readonly RequestId[], batch: boolean, accepts: { json: boolean; sse: boolean }, headers: Record<string, string>) {
    this.res = res;
    this.#waiting = new Set(requestIds.map(idKey));
    this.#batch = batch;
    this.#canStream = accepts.sse;
    this.#jsonOk = accepts.json;
    this.#headers = headers;
  }

  #startStream(): void {
    this.#streaming = true;
    this.res.writeHead(200, { ...this.#headers, ...SSE_HEADERS });
    for (const response of this.#responses) writeEvent(this.res, response);
    this.#responses = [];
  }

  get open(): boolean {
    return !this.res.writableEnded && !this.res.destroyed;
  }

  /** A notification or server request about one of this POST's requests. False when it cannot go here. */
  event(message: JSONRPCMessage): boolean {
    if (!this.open || !this.#canStream) return false;
    if (!this.#streaming) this.#startStream();
    writeEvent(this.res, message);
    return true;
  }

  /** The answer to one of this POST's requests; the response ends with the last one. */
  respond(message: JSONRPCMessage & { id: RequestId }): void {
    this.#waiting.delete(idKey(message.id));
    if (!this.open) return;
    // A client that accepts only SSE gets its answers as events, never as a JSON body.
    if (!this.#streaming && !this.#jsonOk) this.#startStream();
    if (this.#streaming) {
      writeEvent(this.res, message);
      if (this.#waiting.size === 0) this.res.end();
      return;
    }
    this.#responses.push(message);
    if (this.#waiting.size > 0) return;
    const body = JSON.stringify(this.#batch ? this.#responses : this.#responses[0]);
    this.res.writeHead(200, { ...this.#headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
    this.res.end(body);
  }
}

/** A Streamable HTTP client session of the bridge. */
export class StreamableSession implements ClientSession {
  readonly id = randomUUID();
  readonly userId: string;
  readonly connection: StdioServerConnection;
  capabilities: Record<string, unknown> | undefined;
  lastActive = Date.now();
  /** The client's request id → the POST whose response carries its answer. */
  readonly #exchanges = new Map<string, PostExchange>();
  #standalone: ServerResponse | undefined;
  #closed = false;
  /** The id of the session's initialize request while it is unanswered. */
  #initializeKey: string | undefined;

  constructor(userId: string, connection: StdioServerConnection) {
    this.userId = userId;
    this.connection = connection;
  }

  /** Ended: deleted, or its initialize failed (the bridge forgets it). */
  get closed(): boolean {
    return this.#closed;
  }

  get idle(): boolean {
    return this.#standalone === undefined && this.#exchanges.size === 0;
  }

  deliver(message: JSONRPCMessage, relatedRequestId?: RequestId): void {
    if (isResponse(message)) {
      const id = (message as { id: RequestId | null }).id;
      if (id === null) return;
      const key = idKey(id);
      const exchange = this.#exchanges.get(key);
      this.#exchanges.delete(key);
      exchange?.respond(message as JSONRPCMessage & { id: RequestId });
      if (key === this.#initializeKey) {
        this.#initializeKey = undefined;
        // A session whose initialize failed (process cap, server that cannot start) never existed.
        if ('error' in message) this.close();
      }
      return;
    }
    const exchange = relatedRequestId === undefined ? undefined : this.#exchanges.get(idKey(relatedRequestId));
    if (exchange?.event(message)) return;
    if (this.canReceiveUnsolicited()) writeEvent(this.#standalone!, message);
  }

  canReceiveUnsolicited(): boolean {
    return this.#standalone !== undefined && !this.#standalone.writableEnded && !this.#standalone.destroyed;
  }

  /** POST: client messages (already parsed and validated) with the response they need. */
  post(res: ServerResponse, messages: readonly JSONRPCMessage[], batch: boolean, accepts: { json: boolean; sse: boolean }, headers: Record<string, string>): void {
    this.lastActive = Date.now();
    const requestIds: RequestId[] = [];
    for (const message of messages) {
      if (!isRequest(message)) continue;
      requestIds.push(message.id);
      if (message.method === 'initialize') this.#initializeKey = idKey(message.id);
    }
    if (requestIds.length === 0) {
      // MCP Transports: only notifications or responses: 202 Accepted, no body.
      res.writeHead(202, headers);
      res.end();
    } else {
      const exchange = new PostExchange(res, requestIds, batch, accepts, headers);
      for (const id of requestIds) this.#exchanges.set(idKey(id), exchange);
      // A client that disconnects does not cancel its requests (MCP Transports); their answers are dropped.
      res.once('close', () => {
        for (const id of requestIds) if (this.#exchanges.get(idKey(id)) === exchange) this.#exchanges.delete(idKey(id));
        this.lastActive = Date.now();
      });
    }
    for (const message of messages) this.connection.fromClient(this, message);
  }

  /** GET: the stream for messages unrelated to a request; one at a time (409 otherwise). */
  openStream(res: ServerResponse): boolean {
    if (this.canReceiveUnsolicited()) return false;
    this.lastActive = Date.now();
    this.#standalone = res;
    res.writeHead(200, SSE_HEADERS);
    res.flushHeaders();
    res.once('close', () => {
      if (this.#standalone === res) this.#standalone = undefined;
      this.lastActive = Date.now();
    });
    return true;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.connection.detach(this);
    this.#standalone?.end();
    for (const exchange of new Set(this.#exchanges.values())) if (exchange.open) exchange.res.end();
    this.#exchanges.clear();
  }
}

export interface StreamableContext {
  userId: string;
  sessions: Map<string, StreamableSession>;
  connectionFor: (userId: string) => StdioServerConnection;
  /** Largest POST body read from the client. */
  maxBodyBytes: number;
  /** A client message refused (malformed JSON, not JSON-RPC, bad headers): for the log. */
  refused: (reason: string) => void;
  opened: (session: { id: string }) => void;
  closed: (session: { id: string }) => void;
}

/** Handles one request to the Streamable HTTP endpoint. */
export async function handleStreamable(req: IncomingMessage, res: ServerResponse, ctx: StreamableContext): Promise<void> {
  const method = req.method;
  const sessionHeader = req.headers['mcp-session-id'];
  let session: StreamableSession | undefined;
  if (typeof sessionHeader === 'string') {
    session = ctx.sessions.get(sessionHeader);
    // Another user's session is answered exactly like an unknown one (MCP Transports: 404 → new session).
    if (session === undefined || session.closed || session.userId !== ctx.userId) {
      req.resume();
      sendJsonRpcError(res, 404, JsonRpcCode.SESSION_NOT_FOUND, 'Session not found');
      return;
    }
  }
  const version = req.headers['mcp-protocol-version'];
  if (typeof version === 'string' && !SUPPORTED_PROTOCOL_VERSIONS.includes(version)) {
    ctx.refused(`unsupported protocol version ${version}`);
    req.resume();
    sendJsonRpcError(res, 400, JsonRpcCode.TRANSPORT_REFUSED, `Bad Request: Unsupported protocol version: ${version} (supported: ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')})`);
    return;
  }
  const accept = String(req.headers.accept ?? '');
  if (method === 'GET') {
    if (!accept.includes('text/event-stream')) {
      sendJsonRpcError(res, 406, JsonRpcCode.TRANSPORT_REFUSED, 'Not Acceptable: Client must accept text/event-stream');
      return;
    }
    if (!session) {
      sendJsonRpcError(res, 400, JsonRpcCode.TRANSPORT_REFUSED, 'Bad Request: Mcp-Session-Id header is required');
      return;
    }
    if (!session.openStream(res)) sendJsonRpcError(res, 409, JsonRpcCode.TRANSPORT_REFUSED, 'Conflict: Only one SSE stream is allowed per session');
    return;
  }
  if (method === 'DELETE') {
    if (!session) {
      sendJsonRpcError(res, 400, JsonRpcCode.TRANSPORT_REFUSED, 'Bad Request: Mcp-Session-Id header is required');
      return;
    }
    ctx.sessions.delete(session.id);
    session.close();
    ctx.closed(session);
    res.writeHead(200);
    res.end();
    return;
  }
  if (method !== 'POST') {
    req.resume();
    sendJsonRpcError(res, 405, JsonRpcCode.TRANSPORT_REFUSED, 'Method not allowed', { allow: 'GET, POST, DELETE' });
    return;
  }

  // POST. MCP Transports: the client must accept both JSON and SSE; a JSON-only client still gets
  // JSON answers (what it would receive on the stream goes to its GET stream instead).
  if (!accept.includes('application/json') && !accept.includes('text/event-stream') && !accept.includes('*/*')) {
    req.resume();
    sendJsonRpcError(res, 406, JsonRpcCode.TRANSPORT_REFUSED, 'Not Acceptable: Client must accept application/json and text/event-stream');
    return;
  }
  const contentType = String(req.headers['content-type'] ?? '');
  if (!contentType.includes('application/json')) {
    req.resume();
    sendJsonRpcError(res, 415, JsonRpcCode.TRANSPORT_REFUSED, 'Unsupported Media Type: Content-Type must be application/json');
    return;
  }
  const parsed = await readClientMessages(req, res, ctx);
  if (!parsed) return;
  const { batch } = parsed;
  const valid = parsed.messages;
  const initialize = valid.some((message) => isRequest(message) && message.method === 'initialize');
  const headers: Record<string, string> = {};
  if (initialize) {
    // MCP Lifecycle: initialize opens a session and comes alone.
    if (session || valid.length > 1) {
      ctx.refused('initialize inside a session or a batch');
      sendJsonRpcError(res, 400, JsonRpcCode.INVALID_REQUEST, 'Invalid Request: initialize must be sent alone, without Mcp-Session-Id');
      return;
    }
    session = new StreamableSession(ctx.userId, ctx.connectionFor(ctx.userId));
    ctx.sessions.set(session.id, session);
    session.connection.attach(session);
    ctx.opened(session);
    headers['mcp-session-id'] = session.id;
  } else if (!session) {
    ctx.refused('no session');
    sendJsonRpcError(res, 400, JsonRpcCode.TRANSPORT_REFUSED, 'Bad Request: Mcp-Session-Id header is required');
    return;
  }
  const any = accept.includes('*/*');
  session.post(res, valid, batch, { json: any || accept.includes('application/json'), sse: any || accept.includes('text/event-stream') }, headers);
}

function writeEvent(res: ServerResponse, message: JSONRPCMessage): void {
  res.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
}
