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

import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';
import { SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js';
import { idKey, isRequest, isResponse, JsonRpcCode, type JsonRpcCodeValue, sendJsonRpcError } from '../core/jsonrpc.ts';
import type { MessageScreen } from '../core/message-screen.ts';
import { markEventStream } from '../observability/mcp-requests.ts';
import type { ClientSession, StdioServerConnection } from './connection.ts';
import { readClientMessages } from './http.ts';

const SSE_HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache, no-transform', 'x-accel-buffering': 'no' };

/** The response to one POST that carried requests: collects their answers, upgrading to SSE if needed. */
class PostExchange {
  readonly res: ServerResponse;
  readonly #waiting: Set<string>;
  readonly #batch: boolean;
  readonly #canStream: boolean;
  readonly #jsonOk: boolean;
  readonly #headers: Record<string, string>;
  /** `servers[].toolAccess`: answers to list requests lose what the caller may not use. */
  readonly #screen: MessageScreen | undefined;
  #responses: JSONRPCMessage[] = [];
  #streaming = false;

  constructor(
    res: ServerResponse,
    requestIds: readonly RequestId[],
    batch: boolean,
    accepts: { json: boolean; sse: boolean },
    headers: Record<string, string>,
    screen: MessageScreen | undefined,
  ) {
    this.res = res;
    this.#screen = screen;
    this.#waiting = new Set(requestIds.map(idKey));
    this.#batch = batch;
    this.#canStream = accepts.sse;
    this.#jsonOk = accepts.json;
    this.#headers = headers;
  }

  #startStream(): void {
    this.#streaming = true;
    this.res.writeHead(200, { ...this.#headers, ...SSE_HEADERS });
    markEventStream(this.res);
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
  respond(answer: JSONRPCMessage & { id: RequestId }): void {
    this.#waiting.delete(idKey(answer.id));
    if (!this.open) return;
    const message = this.#screen === undefined ? answer : this.#screen.filterResponse(answer);
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
  /** The OAuth client whose token opened the session (undefined on the loopback listener): it must stay the same. */
  readonly clientId: string | undefined;
  readonly connection: StdioServerConnection;
  capabilities: Record<string, unknown> | undefined;
  lastActive: number;
  /** The client's request id → the POST whose response carries its answer. */
  readonly #exchanges = new Map<string, PostExchange>();
  #standalone: ServerResponse | undefined;
  #closed = false;
  /** The id of the session's initialize request while it is unanswered. */
  #initializeKey: string | undefined;
  readonly #answerDropped: (session: StreamableSession) => void;

  /** `answerDropped`: an answer arrived for a request whose client had already disconnected. */
  constructor(
    userId: string,
    connection: StdioServerConnection,
    answerDropped: (session: StreamableSession) => void = () => undefined,
    clientId: string | undefined = undefined,
  ) {
    this.userId = userId;
    this.clientId = clientId;
    this.connection = connection;
    this.#answerDropped = answerDropped;
    this.lastActive = this.#now();
  }

  /** The connection's clock, so the bridge's idle sweep and the process's activity agree on "now". */
  #now(): number {
    return this.connection.clock.now();
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
      const deliverable = exchange?.open === true;
      exchange?.respond(message as JSONRPCMessage & { id: RequestId });
      // A client that disconnects does not cancel its request (MCP Transports): the answer has nowhere to go.
      if (!deliverable) this.#answerDropped(this);
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
  post(
    res: ServerResponse,
    messages: readonly JSONRPCMessage[],
    batch: boolean,
    accepts: AcceptedTypes,
    headers: Record<string, string>,
    screen?: MessageScreen,
  ): void {
    this.lastActive = this.#now();
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
      const exchange = new PostExchange(res, requestIds, batch, accepts, headers, screen?.filtersResponses ? screen : undefined);
      for (const id of requestIds) this.#exchanges.set(idKey(id), exchange);
      // A client that disconnects does not cancel its requests (MCP Transports); their answers are dropped.
      res.once('close', () => {
        for (const id of requestIds) if (this.#exchanges.get(idKey(id)) === exchange) this.#exchanges.delete(idKey(id));
        this.lastActive = this.#now();
      });
    }
    for (const message of messages) this.connection.fromClient(this, message);
  }

  /** GET: the stream for messages unrelated to a request; one at a time (409 otherwise). */
  openStream(res: ServerResponse): boolean {
    if (this.canReceiveUnsolicited()) return false;
    this.lastActive = this.#now();
    this.#standalone = res;
    res.writeHead(200, SSE_HEADERS);
    markEventStream(res);
    res.flushHeaders();
    res.once('close', () => {
      if (this.#standalone === res) this.#standalone = undefined;
      this.lastActive = this.#now();
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
  /** The OAuth client of the request's token; a session is refused to another client of the same user. */
  clientId?: string;
  /** `servers[].toolAccess` (src/resource-server/tool-policy.ts): judges each POST, filters list answers. */
  screen?: MessageScreen;
  sessions: Map<string, StreamableSession>;
  connectionFor: (userId: string) => StdioServerConnection;
  /** Largest POST body read from the client. */
  maxBodyBytes: number;
  /** A client message refused (malformed JSON, not JSON-RPC, bad headers): for the log. */
  refused: (reason: string) => void;
  opened: (session: { id: string }) => void;
  closed: (session: { id: string }) => void;
  /** A session's GET stream opened: from here on it hears notifications unrelated to a request. */
  streamOpened: (session: { id: string }) => void;
  /** An answer arrived after its client had disconnected, and was dropped. */
  answerDropped: (session: { id: string }) => void;
}

/**
 * Handles one request to the Streamable HTTP endpoint (MCP Transports, Streamable HTTP): the session
 * and protocol version are checked first, whatever the method, then each method has its own step.
 */
export async function handleStreamable(req: IncomingMessage, res: ServerResponse, ctx: StreamableContext): Promise<void> {
  const session = sessionOf(req, ctx);
  if (session === UNKNOWN_SESSION) {
    refuseUnread(req, res, 404, JsonRpcCode.SESSION_NOT_FOUND, 'Session not found');
    return;
  }
  if (!protocolVersionSupported(req, res, ctx)) return;
  if (req.method === 'GET') openStandaloneStream(req, res, session, ctx);
  else if (req.method === 'DELETE') deleteSession(res, session, ctx);
  else if (req.method === 'POST') await postMessages(req, res, session, ctx);
  else refuseUnread(req, res, 405, JsonRpcCode.TRANSPORT_REFUSED, 'Method not allowed', { allow: 'GET, POST, DELETE' });
}

const UNKNOWN_SESSION = Symbol('unknown session');

/**
 * The session `Mcp-Session-Id` names; undefined without the header. Another user's session, or one
 * that has ended, is answered exactly like an unknown one (MCP Transports: 404, the client starts a
 * new session), so a session id reveals nothing to anyone but its owner.
 */
function sessionOf(req: IncomingMessage, ctx: StreamableContext): StreamableSession | undefined | typeof UNKNOWN_SESSION {
  const header = req.headers['mcp-session-id'];
  if (typeof header !== 'string') return undefined;
  const session = ctx.sessions.get(header);
  // Bound to its owner: the user and the OAuth client whose token opened it (a leaked session id is
  // useless with anyone else's token).
  if (session === undefined || session.closed || session.userId !== ctx.userId || session.clientId !== ctx.clientId) return UNKNOWN_SESSION;
  return session;
}

/** MCP Transports, Protocol Version Header: a version the bridge does not speak gets 400. */
function protocolVersionSupported(req: IncomingMessage, res: ServerResponse, ctx: StreamableContext): boolean {
  const version = req.headers['mcp-protocol-version'];
  if (typeof version !== 'string' || SUPPORTED_PROTOCOL_VERSIONS.includes(version)) return true;
  ctx.refused(`unsupported protocol version ${version}`);
  refuseUnread(
    req,
    res,
    400,
    JsonRpcCode.TRANSPORT_REFUSED,
    `Bad Request: Unsupported protocol version: ${version} (supported: ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')})`,
  );
  return false;
}

interface AcceptedTypes {
  json: boolean;
  sse: boolean;
}

function acceptedTypes(req: IncomingMessage): AcceptedTypes {
  const accept = String(req.headers.accept ?? '');
  const any = accept.includes('*/*');
  return { json: any || accept.includes('application/json'), sse: any || accept.includes('text/event-stream') };
}

/** GET: the session's stream for messages unrelated to a request; one at a time. The client must list SSE. */
function openStandaloneStream(req: IncomingMessage, res: ServerResponse, session: StreamableSession | undefined, ctx: StreamableContext): void {
  if (!String(req.headers.accept ?? '').includes('text/event-stream'))
    sendJsonRpcError(res, 406, JsonRpcCode.TRANSPORT_REFUSED, 'Not Acceptable: Client must accept text/event-stream');
  else if (!session) sendJsonRpcError(res, 400, JsonRpcCode.TRANSPORT_REFUSED, 'Bad Request: Mcp-Session-Id header is required');
  else if (!session.openStream(res)) sendJsonRpcError(res, 409, JsonRpcCode.TRANSPORT_REFUSED, 'Conflict: Only one SSE stream is allowed per session');
  else ctx.streamOpened(session);
}

/** DELETE: the client ends its session (MCP Transports, Session Management). */
function deleteSession(res: ServerResponse, session: StreamableSession | undefined, ctx: StreamableContext): void {
  if (!session) {
    sendJsonRpcError(res, 400, JsonRpcCode.TRANSPORT_REFUSED, 'Bad Request: Mcp-Session-Id header is required');
    return;
  }
  ctx.sessions.delete(session.id);
  session.close();
  ctx.closed(session);
  res.writeHead(200);
  res.end();
}

/** POST: client messages, answered on this response (JSON, or SSE when the server has more to say). */
async function postMessages(req: IncomingMessage, res: ServerResponse, session: StreamableSession | undefined, ctx: StreamableContext): Promise<void> {
  const accept = acceptedTypes(req);
  if (!postHeadersAcceptable(req, res, accept)) return;
  const parsed = await readClientMessages(req, res, ctx);
  if (!parsed) return;
  const refusal = ctx.screen?.admit(parsed.messages, parsed.batch, req.headers);
  if (refusal !== undefined) {
    res.writeHead(refusal.status, { ...refusal.headers, 'content-length': String(Buffer.byteLength(refusal.body)) });
    res.end(refusal.body);
    return;
  }
  const target = sessionForPost(res, session, parsed.messages, ctx);
  if (target === undefined) return;
  const headers: Record<string, string> = target === session ? {} : { 'mcp-session-id': target.id };
  target.post(res, parsed.messages, parsed.batch, accept, headers, ctx.screen);
}

/**
 * MCP Transports: a POST's client must accept both JSON and SSE, and send JSON. A JSON-only client
 * still gets JSON answers (what it would receive on the stream goes to its GET stream instead), so
 * only a client that accepts neither is refused.
 */
function postHeadersAcceptable(req: IncomingMessage, res: ServerResponse, accept: AcceptedTypes): boolean {
  if (!accept.json && !accept.sse) {
    refuseUnread(req, res, 406, JsonRpcCode.TRANSPORT_REFUSED, 'Not Acceptable: Client must accept application/json and text/event-stream');
    return false;
  }
  if (!String(req.headers['content-type'] ?? '').includes('application/json')) {
    refuseUnread(req, res, 415, JsonRpcCode.TRANSPORT_REFUSED, 'Unsupported Media Type: Content-Type must be application/json');
    return false;
  }
  return true;
}

/**
 * The session a POST's messages belong to: a new one for `initialize` (MCP Lifecycle: it opens the
 * session and comes alone), else the one named by `Mcp-Session-Id`. Undefined when refused (answered).
 */
function sessionForPost(
  res: ServerResponse,
  session: StreamableSession | undefined,
  messages: readonly JSONRPCMessage[],
  ctx: StreamableContext,
): StreamableSession | undefined {
  const initialize = messages.some((message) => isRequest(message) && message.method === 'initialize');
  if (!initialize) {
    if (session) return session;
    ctx.refused('no session');
    sendJsonRpcError(res, 400, JsonRpcCode.TRANSPORT_REFUSED, 'Bad Request: Mcp-Session-Id header is required');
    return undefined;
  }
  if (session || messages.length > 1) {
    ctx.refused('initialize inside a session or a batch');
    sendJsonRpcError(res, 400, JsonRpcCode.INVALID_REQUEST, 'Invalid Request: initialize must be sent alone, without Mcp-Session-Id');
    return undefined;
  }
  const created = new StreamableSession(ctx.userId, ctx.connectionFor(ctx.userId), ctx.answerDropped, ctx.clientId);
  ctx.sessions.set(created.id, created);
  created.connection.attach(created);
  ctx.opened(created);
  return created;
}

/** Refuses a request whose body will not be read: the body is drained so the connection stays usable. */
function refuseUnread(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  code: JsonRpcCodeValue,
  message: string,
  headers?: Record<string, string>,
): void {
  req.resume();
  sendJsonRpcError(res, status, code, message, headers);
}

function writeEvent(res: ServerResponse, message: JSONRPCMessage): void {
  res.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
}
