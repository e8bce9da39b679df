/**
 * The streaming reverse proxy from the gateway to an upstream MCP server (Streamable HTTP).
 *
 * Built directly on undici's dispatcher API so that nothing sits between the sockets: the request body
 * is handed to the upstream as it arrives, and every response chunk is written to the client the moment
 * it is received, which is what lets SSE events through unbuffered. Backpressure runs both ways: a
 * slow client pauses the upstream read, a slow upstream pauses the client read.
 *
 * Upstream failures become a JSON-RPC error with 502/504 and are logged; they never throw out of here.
 * So that they can, a finite (non-SSE) response is held until its body is complete, with a limit on
 * the pause between its bytes, and a 2xx answer to a POST is checked against what MCP allows
 * (upstream-response.ts); an SSE answer to a POST is watched for the answers it still owes
 * (sse-watch.ts).
 *
 * For servers with `toolAccess` (src/resource-server/tool-policy.ts) every POST body is read whole and
 * screened before it goes upstream, and an answer to a list request is filtered on the same path: a
 * JSON one is held like any finite answer (with a higher cap, past which it fails closed rather than
 * stream unfiltered), checked, then filtered before its headers go out; an SSE one is filtered event
 * by event, while the watch reads what the upstream sent (list-answer-filter.ts).
 *
 * Older HTTP+SSE upstreams (2024-11-05, `transport: 'sse'`): clients open the stream with `GET <route>`
 * (the route itself stands for the upstream's SSE URL); the stream's `endpoint` event is rewritten to a
 * path under the route, and the client's POSTs there go to the same path under the SSE URL's directory
 * (`/sse` + `/messages?sessionId=…` upstream is `<route>` + `<route>/messages?sessionId=…` here; so
 * `GET <route>/sse` reaches the SSE URL as well).
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';
import type { Dispatcher } from 'undici';
import { buildConnector, Client, Pool } from 'undici';
import { ErrorCode, GatewayError } from '../core/errors.ts';
import { isJsonRpcProblem, isRequestId, JsonRpcCode, type JsonRpcCodeValue, parseJsonRpcBody, sendJsonRpcError } from '../core/jsonrpc.ts';
import { scanJsonRpcBody } from '../core/jsonrpc-scan.ts';
import type { MessageScreen } from '../core/message-screen.ts';
import { BodyTooLargeError, cappedBodyStream, collectBody } from '../http/body.ts';
import type { Logger } from '../observability/logger.ts';
import { markEventStream, noteMcpMessage } from '../observability/mcp-requests.ts';
import { ListAnswerFilter, ListAnswerTooLarge, MAX_HELD_ANSWER_BYTES } from './list-answer-filter.ts';
import { SseEndpointError, SseEndpointRewriter } from './sse-endpoint.ts';
import { SseAnswerWatch } from './sse-watch.ts';
import {
  carriesRequest,
  HELD_BODY_MAX_BYTES,
  isEncoded,
  jsonAnswerProblem,
  ResponseMode,
  type ResponseModeValue,
  requestIdsOf,
  responseMode,
  sendUpstreamError,
  UpstreamIdleError,
  UpstreamInvalidResponseError,
} from './upstream-response.ts';

/**
 * RFC 9110 §7.6.1: connection-specific fields, never forwarded (plus the ones `Connection` names).
 * `proxy-authorization`/`proxy-authenticate` are addressed to this hop, and `expect` is answered by the
 * gateway's own HTTP server.
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authorization',
  'proxy-authenticate',
  'expect',
  'http2-settings',
]);

/**
 * Request headers the upstream must never see. `authorization`: MCP forbids token passthrough (the
 * upstream would otherwise hold a token minted for the gateway). `cookie`: the gateway's own session
 * and consent cookies live on this origin. `host`: undici sets the upstream's.
 */
const STRIPPED_REQUEST = new Set(['authorization', 'cookie', 'host']);

/**
 * Client-supplied forwarding headers are dropped: the gateway adds its own `X-Forwarded-For/Proto/Host`
 * (see index.ts), and an upstream must not be able to mistake a client's claim for the gateway's.
 */
function forwardingHeader(name: string): boolean {
  return name === 'forwarded' || name === 'x-real-ip' || name.startsWith('x-forwarded-');
}

/**
 * Response headers the gateway owns. `set-cookie`: an upstream must not plant cookies on the gateway's
 * origin, where the authorization server's consent cookies live. `access-control-*`: CORS is decided
 * by the gateway's origin policy, not by the upstream.
 */
function strippedResponseHeader(name: string): boolean {
  return name === 'set-cookie' || name.startsWith('access-control-');
}

export interface UpstreamProxyOptions {
  /** Server name, used in error messages and logs. */
  name: string;
  /** The upstream MCP endpoint, e.g. `http://127.0.0.1:3001/mcp`. */
  url: string;
  /** Time allowed for the upstream's response headers; bodies (SSE) are never cut by it. */
  timeoutMs: number;
  /** Longest pause between bytes of a held (non-SSE) response body; 60 s when not given. */
  bodyIdleTimeoutMs?: number;
  maxRequestBytes: number;
  /** Keep-alive connection pool for the upstream's origin (shared by servers on the same origin). */
  dispatcher: Pick<Dispatcher, 'dispatch'>;
  logger: Logger;
  /** `sse`: the upstream speaks HTTP+SSE (2024-11-05) and `url` is its SSE endpoint. */
  transport?: 'streamable-http' | 'sse';
  /** The gateway route path (`/legacy`), for the rewritten SSE `endpoint` event. */
  routePath?: string;
}

export interface ForwardOptions {
  /** Path after the gateway route (`''` or starting with `/`). */
  subPath: string;
  /** Query string without `?` (may be empty). */
  search: string;
  /** Lowercased request header names to drop in addition to the fixed ones (identity headers a client could forge). */
  dropHeaders: { has(name: string): boolean };
  /** Header name/value pairs appended to the upstream request (identity hand-over). */
  addHeaders: readonly string[];
  /** Headers added to whatever response goes back (CORS for an allowed browser origin). */
  responseHeaders: Readonly<Record<string, string>> | undefined;
  /**
   * `servers[].toolAccess` (src/resource-server/tool-policy.ts): every POST body is then read whole and
   * judged before it goes upstream, and answers to list requests are filtered. Absent: nothing extra.
   */
  screen?: MessageScreen;
  /** Told the `Mcp-Session-Id` a successful answer carries (a new session), before the client sees it. */
  onSession?: (sessionId: string) => void;
  /** The resource server's per-call step (rate limits, audit), told what the proxy learns. */
  call?: ForwardCall;
}

/**
 * What the resource server hears from the proxy about one request, so that it needs no parse of its
 * own: the body's messages before anything goes upstream (and may refuse them there), and the
 * upstream's status.
 */
export interface ForwardCall {
  /**
   * The body's JSON-RPC messages, once read and checked (undefined for a body streamed unread: large,
   * chunked, not JSON, or none). A refusal is answered instead of forwarding.
   */
  admit(messages: JSONRPCMessage | JSONRPCMessage[] | undefined): ForwardRefusal | undefined | Promise<ForwardRefusal | undefined>;
  /** `servers[].toolAccess` refused these messages (src/resource-server/tool-policy.ts); nothing went upstream. */
  deniedByScreen(messages: JSONRPCMessage | JSONRPCMessage[]): void;
  /** The upstream's final status, set when it answers. */
  upstreamStatus: number | undefined;
}

/** An answer the resource server gives instead of the upstream's (a 429, say). */
export interface ForwardRefusal {
  status: number;
  code: JsonRpcCodeValue;
  message: string;
  headers: Readonly<Record<string, string>>;
}

/**
 * Small JSON request bodies are checked before they go upstream, so a client that sends broken JSON
 * gets the JSON-RPC 2.0 answer (§5.1: -32700 Parse error, -32600 Invalid Request) from the gateway
 * rather than whatever each upstream makes of it. Only bodies up to this size with a declared length
 * are checked; larger or chunked bodies are streamed unchecked so that big uploads are never held in
 * memory.
 */
export const JSON_CHECK_MAX_BYTES = 64 * 1024;

export class UpstreamProxy {
  readonly name: string;
  readonly #origin: string;
  readonly #rootPath: string;
  readonly #basePath: string;
  readonly #baseSearch: string;
  readonly #dispatcher: Pick<Dispatcher, 'dispatch'>;
  readonly #timeoutMs: number;
  /** @internal Read by exchanges for their idle timer. */
  readonly bodyIdleTimeoutMs: number;
  readonly #maxRequestBytes: number;
  readonly #logger: Logger;
  readonly #unavailable: string;
  readonly #invalid: string;
  readonly #sse: boolean;
  readonly #routePath: string;
  readonly #upstreamUrl: URL;
  /**
   * HTTP+SSE upstreams: each open GET stream by the message endpoint its client was given, after the
   * route (`/messages?sessionId=…`). A POST there registers its requests with that stream's watch,
   * because in that transport their answers come on the stream (sse-watch.ts).
   */
  readonly #legacyStreams = new Map<string, Exchange>();

  constructor(options: UpstreamProxyOptions) {
    const url = new URL(options.url);
    this.name = options.name;
    this.#origin = url.origin;
    this.#upstreamUrl = url;
    this.#sse = options.transport === 'sse';
    this.#routePath = options.routePath ?? '';
    // The route itself maps to the upstream URL exactly as configured (some servers insist on a
    // trailing slash and redirect otherwise); deeper paths are appended to it. For an HTTP+SSE
    // upstream they are appended to the SSE URL's directory, where its message endpoint lives.
    this.#rootPath = url.pathname;
    this.#basePath = this.#sse ? url.pathname.slice(0, url.pathname.lastIndexOf('/')) : url.pathname.replace(/\/+$/, '');
    this.#baseSearch = url.search.slice(1);
    this.#dispatcher = options.dispatcher;
    this.#timeoutMs = options.timeoutMs;
    this.bodyIdleTimeoutMs = options.bodyIdleTimeoutMs ?? 60_000;
    this.#maxRequestBytes = options.maxRequestBytes;
    this.#logger = options.logger;
    this.#unavailable = `Upstream MCP server "${options.name}" is unavailable`;
    this.#invalid = `Upstream MCP server "${options.name}" sent a response that is not valid MCP`;
  }

  /** Forwards one request; the response (upstream's, or an error) is always written to `res`. */
  forward(req: IncomingMessage, res: ServerResponse, options: ForwardOptions): void {
    if (options.screen !== undefined && req.method === 'POST') {
      this.#forwardScreened(req, res, options, options.screen);
      return;
    }
    if (options.screen !== undefined && req.method === 'GET') options.screen.admitStream();
    const headers = req.headers;
    const declaredLength = headers['content-length'];
    const chunked = headers['transfer-encoding'] !== undefined;
    let body: Dispatcher.DispatchOptions['body'] = null;
    if (declaredLength !== undefined && !chunked) {
      // Node's parser has already validated the number, and it never reads past it.
      const length = Number(declaredLength);
      if (length > this.#maxRequestBytes) {
        this.#tooLarge(req, res, options.responseHeaders);
        return;
      }
      if (length > 0) {
        if (length <= JSON_CHECK_MAX_BYTES && req.method === 'POST' && isJson(headers['content-type'])) {
          this.#forwardChecked(req, res, options);
          return;
        }
        body = req;
      }
    } else if (chunked) {
      body = cappedBodyStream(req, this.#maxRequestBytes);
    }
    this.#dispatch(req, res, options, body, chunked, undefined);
  }

  /** Reads a small JSON body whole, refuses it when it is no JSON-RPC message, else sends it on. */
  #forwardChecked(req: IncomingMessage, res: ServerResponse, options: ForwardOptions): void {
    collectBody(req, this.#maxRequestBytes, (error, body) => {
      // A client that left mid-upload ends here with its stream's error: nothing was sent upstream.
      if (error !== undefined || res.destroyed) return;
      // The byte-level check accepts the common good body without building its objects; anything it
      // declines gets the full parse, which words the error (core/jsonrpc-scan.ts).
      const parsed = scanJsonRpcBody(body) ?? parseJsonRpcBody(body.toString('utf8'));
      if (isJsonRpcProblem(parsed)) {
        this.#logger.info({ event: 'gateway.malformed_request', upstream: this.name, code: parsed.code }, 'malformed JSON-RPC request refused');
        sendJsonRpcError(res, 400, parsed.code, parsed.message, options.responseHeaders, parsed.id);
        return;
      }
      noteMcpMessage(req, parsed); // the method and tool labels of the request metrics
      this.#dispatch(req, res, options, body, false, parsed);
    });
  }

  /**
   * Tool-level authorization: every POST body, whatever its length, type or encoding, is read whole
   * (up to `maxRequestBytes`) and parsed once, so no message reaches a server with rules unjudged.
   * The parse is the same check `#forwardChecked` makes, so the answer is held and checked as well.
   * The screen judges before the per-call step (`options.call`, in `#dispatch`): a refused call
   * spends none of a rate limit's budget.
   */
  #forwardScreened(req: IncomingMessage, res: ServerResponse, options: ForwardOptions, screen: MessageScreen): void {
    collectBody(req, this.#maxRequestBytes, (error, body) => {
      if (error instanceof BodyTooLargeError) {
        sendJsonRpcError(res, 413, JsonRpcCode.REQUEST_TOO_LARGE, tooLargeMessage(this.#maxRequestBytes), { ...options.responseHeaders, connection: 'close' });
        return;
      }
      if (error !== undefined || res.destroyed) return;
      // The same byte-level check as `#forwardChecked`: the screen and the per-call step read the
      // messages' members (`params` parsed when first read), never copy them (core/jsonrpc-scan.ts).
      const parsed = scanJsonRpcBody(body) ?? parseJsonRpcBody(body.toString('utf8'));
      if (isJsonRpcProblem(parsed)) {
        this.#logger.info({ event: 'gateway.malformed_request', upstream: this.name, code: parsed.code }, 'malformed JSON-RPC request refused');
        sendJsonRpcError(res, 400, parsed.code, parsed.message, options.responseHeaders, parsed.id);
        return;
      }
      noteMcpMessage(req, parsed); // the method and tool labels of the request metrics, refused or not
      const batch = Array.isArray(parsed);
      const refusal = screen.admit(batch ? parsed : [parsed], batch, req.headers);
      if (refusal !== undefined) {
        options.call?.deniedByScreen(parsed);
        res.writeHead(refusal.status, { ...options.responseHeaders, ...refusal.headers, 'content-length': Buffer.byteLength(refusal.body) });
        res.end(refusal.body);
        return;
      }
      this.#dispatch(req, res, options, body, false, parsed);
    });
  }

  /**
   * The resource server's step first (`options.call`), then the request upstream. `messages`: the
   * request body when it was read and checked (its request ids are then known).
   */
  #dispatch(
    req: IncomingMessage,
    res: ServerResponse,
    options: ForwardOptions,
    body: Dispatcher.DispatchOptions['body'],
    chunked: boolean,
    messages: JSONRPCMessage | JSONRPCMessage[] | undefined,
  ): void {
    const verdict = options.call?.admit(messages);
    if (verdict === undefined) {
      this.#send(req, res, options, body, chunked, messages);
      return;
    }
    if (!(verdict instanceof Promise)) {
      refuse(req, res, verdict, options, body, messages);
      return;
    }
    verdict.then(
      (later) => {
        if (res.destroyed) return;
        if (later === undefined) this.#send(req, res, options, body, chunked, messages);
        else refuse(req, res, later, options, body, messages);
      },
      (error: unknown) => {
        this.#logger.error({ err: error, upstream: this.name }, 'request admission failed');
        sendJsonRpcError(res, 500, JsonRpcCode.INTERNAL_ERROR, 'Internal gateway error', options.responseHeaders);
      },
    );
  }

  #send(
    req: IncomingMessage,
    res: ServerResponse,
    options: ForwardOptions,
    body: Dispatcher.DispatchOptions['body'],
    chunked: boolean,
    messages: JSONRPCMessage | JSONRPCMessage[] | undefined,
  ): void {
    // A list answer to filter must arrive readable: the filter cannot see into a compressed body.
    const filtered = options.screen?.filtersResponses === true;
    const upstreamHeaders = forwardedRequestHeaders(req.headers, filtered ? dropWithEncoding(options.dropHeaders) : options.dropHeaders, chunked);
    if (filtered) upstreamHeaders.push('accept-encoding', 'identity');
    for (const value of options.addHeaders) upstreamHeaders.push(value);

    // `/mcp` and `/mcp/` name the same resource (see resource.ts), so both reach the configured URL.
    const root = options.subPath === '' || options.subPath === '/';
    let path = root ? this.#rootPath : this.#basePath + options.subPath;
    // The SSE URL's own query (if any) belongs to the SSE URL, not to the message endpoint beside it.
    const baseSearch = this.#sse && !root ? '' : this.#baseSearch;
    const search = baseSearch && options.search ? `${baseSearch}&${options.search}` : baseSearch || options.search;
    if (search) path += `?${search}`;

    // undici may destroy the body stream with an error when the upstream fails mid-upload; without a
    // listener that error would be unhandled and take the process down.
    if (body !== null) req.on('error', ignore);

    // Only Streamable HTTP POSTs with requests are owed JSON-RPC answers (upstream-response.ts).
    const checked = !this.#sse && req.method === 'POST' && carriesRequest(messages);
    const exchange = new Exchange(this, req, res, options.responseHeaders, body !== null, messages, checked);
    exchange.call = options.call;
    if (this.#sse && req.method === 'GET') exchange.endpointRewriter = new SseEndpointRewriter(this.#endpointForClient);
    else if (this.#sse && messages !== undefined) {
      const stream = this.#legacyStreams.get(options.search ? `${options.subPath}?${options.search}` : options.subPath);
      if (stream?.watch !== undefined) exchange.answeredOn(stream.watch);
    }
    if (filtered) exchange.listFilter = new ListAnswerFilter(options.screen as MessageScreen);
    exchange.onSession = options.onSession;
    res.once('close', exchange.onClientClose);
    this.#dispatcher.dispatch(
      {
        origin: this.#origin,
        path,
        method: req.method ?? 'GET',
        headers: upstreamHeaders,
        body,
        headersTimeout: this.#timeoutMs,
        // SSE streams stay open as long as the session wants; an idle stream is not a failure.
        bodyTimeout: 0,
        // Streamable HTTP POSTs are not idempotent; never replay them on another connection.
        idempotent: req.method === 'GET',
      },
      exchange,
    );
  }

  /** @internal An HTTP+SSE stream told its client where to POST (`endpoint`: the rewritten path). */
  legacyStreamOpened(exchange: Exchange, endpoint: string): void {
    exchange.legacyKey = endpoint.slice(this.#routePath.length);
    this.#legacyStreams.set(exchange.legacyKey, exchange);
  }

  /** @internal That stream ended. */
  legacyStreamClosed(exchange: Exchange): void {
    if (exchange.legacyKey === undefined) return;
    if (this.#legacyStreams.get(exchange.legacyKey) === exchange) this.#legacyStreams.delete(exchange.legacyKey);
    exchange.legacyKey = undefined;
  }

  /**
   * Maps the upstream's `endpoint` URL (relative to its SSE URL) to a gateway path under the route.
   * Refused (undefined) when it points at another origin or outside the SSE URL's directory: the
   * gateway could not route the client's POSTs there.
   */
  readonly #endpointForClient = (endpoint: string): string | undefined => {
    const target = URL.parse(endpoint, this.#upstreamUrl);
    if (!target || target.origin !== this.#origin) return undefined;
    if (!target.pathname.startsWith(`${this.#basePath}/`)) return undefined;
    return `${this.#routePath}${target.pathname.slice(this.#basePath.length)}${target.search}`;
  };

  /** @internal Called by an exchange that failed before any response byte was sent. */
  fail(exchange: Exchange, error: Error): void {
    const code = errorCode(error);
    const res = exchange.res;
    const extra: Record<string, string> = { ...exchange.responseHeaders };
    // The client may still be sending a body nobody will read: close the connection after answering.
    if (exchange.hasBody && !exchange.req.complete) extra.connection = 'close';
    if (error instanceof BodyTooLargeError) {
      sendJsonRpcError(res, 413, JsonRpcCode.REQUEST_TOO_LARGE, tooLargeMessage(this.#maxRequestBytes), extra);
      return;
    }
    if (error instanceof UpstreamInvalidResponseError) {
      this.#logger.warn(
        { event: 'upstream.invalid_response', upstream: this.name, reason: error.message, status: exchange.statusCode },
        'upstream MCP server sent a response MCP does not allow; answered 502',
      );
      sendUpstreamError(res, 502, JsonRpcCode.UPSTREAM_INVALID_RESPONSE, this.#invalid, extra, exchange.messages);
      return;
    }
    const idle = error instanceof UpstreamIdleError;
    const timeout = idle || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT';
    this.#logger.warn(
      {
        event: idle ? 'upstream.body_stalled' : timeout ? 'upstream.timeout' : 'upstream.unavailable',
        upstream: this.name,
        code,
        reason: error.message,
        method: exchange.req.method,
      },
      idle ? 'upstream MCP server stopped sending its response' : timeout ? 'upstream MCP server timed out' : 'upstream MCP server unavailable',
    );
    sendUpstreamError(
      res,
      timeout ? 504 : 502,
      timeout ? JsonRpcCode.SERVER_TIMEOUT : JsonRpcCode.SERVER_UNAVAILABLE,
      this.#unavailable,
      extra,
      exchange.messages,
    );
  }

  /** @internal Called when the upstream stream broke after the response had started. */
  broke(exchange: Exchange, error: Error): void {
    this.#logger.warn(
      { event: 'upstream.stream_broken', upstream: this.name, code: errorCode(error), reason: error.message, method: exchange.req.method },
      'upstream MCP server closed the stream mid-response',
    );
    // An SSE stream ends cleanly: an unfinished event is discarded by the client's parser (WHATWG
    // HTML §9.2.6), requests it still owed an answer get an error event (sse-watch.ts), and the client
    // reconnects or gives up as it would for any ended stream. Anything else is cut: the status line
    // is gone, and an aborted chunked body is the only honest signal left.
    if (exchange.eventStream && !exchange.res.destroyed) this.endStream(exchange);
    else exchange.res.destroy();
  }

  /** @internal Ends a client's SSE stream, first answering the requests the upstream left unanswered. */
  endStream(exchange: Exchange): void {
    const watch = exchange.watch;
    const owed = watch === undefined ? 0 : watch.unanswered.length;
    if (watch !== undefined && owed > 0) {
      this.#logger.warn(
        { event: 'upstream.stream_unanswered', upstream: this.name, requests: owed },
        'upstream MCP server closed the stream before answering; the gateway answered with errors',
      );
      exchange.res.write(watch.closingEvents(JsonRpcCode.SERVER_UNAVAILABLE, STREAM_CLOSED_MESSAGE));
    }
    exchange.res.end();
  }

  /** @internal The upstream's SSE stream did not start with a usable `endpoint` event. */
  badEndpoint(exchange: Exchange, error: Error): void {
    this.#logger.warn({ event: 'upstream.bad_sse_endpoint', upstream: this.name, reason: error.message }, 'upstream HTTP+SSE stream refused');
    exchange.controller?.abort(error);
    exchange.res.destroy();
  }

  /** @internal The client left before the response finished; the upstream request was aborted. */
  clientGone(exchange: Exchange): void {
    this.#logger.info(
      { event: 'upstream.client_aborted', upstream: this.name, method: exchange.req.method, streaming: exchange.eventStream },
      'client closed the connection; upstream request aborted',
    );
  }

  #tooLarge(req: IncomingMessage, res: ServerResponse, responseHeaders: Readonly<Record<string, string>> | undefined): void {
    // The body stays unread; closing the connection stops the client from uploading the rest.
    sendJsonRpcError(res, 413, JsonRpcCode.REQUEST_TOO_LARGE, tooLargeMessage(this.#maxRequestBytes), { ...responseHeaders, connection: 'close' });
    req.resume();
  }
}

/**
 * Answers a refused request with the resource server's error, carrying the request's id when the body
 * held exactly one request (JSON-RPC 2.0 §5). A body left unread is drained and the connection closed.
 */
function refuse(
  req: IncomingMessage,
  res: ServerResponse,
  refusal: ForwardRefusal,
  options: ForwardOptions,
  body: Dispatcher.DispatchOptions['body'],
  messages: JSONRPCMessage | JSONRPCMessage[] | undefined,
): void {
  const unread = body !== null && !Buffer.isBuffer(body);
  const headers = unread ? { ...options.responseHeaders, ...refusal.headers, connection: 'close' } : { ...options.responseHeaders, ...refusal.headers };
  const id = messages !== undefined && !Array.isArray(messages) ? (messages as { id?: unknown }).id : undefined;
  sendJsonRpcError(res, refusal.status, refusal.code, refusal.message, headers, isRequestId(id) ? id : null);
  if (unread) req.resume();
}

/** The error each request still unanswered gets when its SSE stream ends early. */
const STREAM_CLOSED_MESSAGE = 'upstream MCP server closed the stream before answering';

function tooLargeMessage(limit: number): string {
  return `Request body exceeds the gateway limit of ${limit} bytes`;
}

/**
 * One proxied request. undici calls the `on*` methods (its v7 handler interface), which live on the
 * prototype; only the three callbacks handed to Node events are per-instance arrow functions (the idle
 * timer gets the exchange as its argument instead of a closure).
 */
class Exchange implements Dispatcher.DispatchHandler {
  readonly proxy: UpstreamProxy;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly responseHeaders: Readonly<Record<string, string>> | undefined;
  readonly hasBody: boolean;
  /** The client's messages when the body was read and checked; their request ids go into errors. */
  readonly messages: JSONRPCMessage | JSONRPCMessage[] | undefined;
  /** A Streamable HTTP POST with requests: its 2xx answer must be what MCP allows. */
  readonly checked: boolean;
  controller: Dispatcher.DispatchController | undefined = undefined;
  clientClosed = false;
  wroteBody = false;
  /** The response is an SSE stream. */
  eventStream = false;
  /** Set for GETs to an HTTP+SSE upstream: the first `endpoint` event is rewritten. */
  endpointRewriter: SseEndpointRewriter | undefined = undefined;
  /**
   * Which requests an SSE stream still owes an answer: set for an SSE answer to a POST with requests,
   * and for an HTTP+SSE GET stream (persistent: its session's POSTs add theirs).
   */
  watch: SseAnswerWatch | undefined = undefined;
  mode: ResponseModeValue = ResponseMode.STREAM;
  statusCode = 0;
  /** A held response's headers, sent once its body is complete. */
  heldHeaders: Record<string, string | string[]> | undefined = undefined;
  /** A held response's body so far; undefined once the response streams. */
  held: Buffer[] | undefined = undefined;
  heldBytes = 0;
  idleTimer: NodeJS.Timeout | undefined = undefined;
  /** An HTTP+SSE GET stream: the message endpoint key it is registered under. */
  legacyKey: string | undefined = undefined;
  /**
   * Set when the request carried a list request (or is a GET stream) to a server with `toolAccess`:
   * its answer is filtered, a JSON one once held whole, an SSE one event by event.
   */
  listFilter: ListAnswerFilter | undefined = undefined;
  /** Session owners (src/resource-server/session-owners.ts): told of a session id the upstream hands out. */
  onSession: ((sessionId: string) => void) | undefined = undefined;
  /** An HTTP+SSE POST: the stream its requests are answered on, and their ids. */
  legacyWatch: SseAnswerWatch | undefined = undefined;
  legacyIds: RequestId[] | undefined = undefined;
  /** The resource server's per-call step, told the upstream's status. */
  call: ForwardCall | undefined = undefined;

  constructor(
    proxy: UpstreamProxy,
    req: IncomingMessage,
    res: ServerResponse,
    responseHeaders: Readonly<Record<string, string>> | undefined,
    hasBody: boolean,
    messages: JSONRPCMessage | JSONRPCMessage[] | undefined,
    checked: boolean,
  ) {
    this.proxy = proxy;
    this.req = req;
    this.res = res;
    this.responseHeaders = responseHeaders;
    this.hasBody = hasBody;
    this.messages = messages;
    this.checked = checked;
  }

  /** An HTTP+SSE POST: its requests are answered on the session's stream, which now expects them. */
  answeredOn(watch: SseAnswerWatch): void {
    const ids = requestIdsOf(this.messages);
    if (ids.length === 0) return;
    watch.expect(ids);
    this.legacyWatch = watch;
    this.legacyIds = ids;
  }

  /** The POST failed: its client holds an error already, so the stream owes these requests nothing. */
  #postFailed(): void {
    if (this.legacyWatch === undefined) return;
    this.legacyWatch.forget(this.legacyIds!);
    this.legacyWatch = undefined;
  }

  /**
   * The client went away, or the gateway ended the response itself (an SSE stream closed by the
   * shutdown drain, src/http/in-flight.ts), before the upstream finished: stop the upstream request too.
   */
  readonly onClientClose = (): void => {
    this.clientClosed = true;
    this.controller?.abort(new ClientClosedError());
  };

  readonly onDrain = (): void => {
    this.controller?.resume();
  };

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // The client left while the request waited for a pooled connection.
    if (this.clientClosed) controller.abort(new ClientClosedError());
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    // 1xx interim responses are hop-by-hop (RFC 9110 §15.2); only the final response goes back.
    if (statusCode < 200 || this.clientClosed) return;
    this.statusCode = statusCode;
    if (this.call !== undefined) this.call.upstreamStatus = statusCode;
    if (statusCode >= 300) this.#postFailed();
    const out = responseHeadersFrom(headers, this.responseHeaders);
    this.mode = responseMode(statusCode, headers, this.checked);
    if (this.mode === ResponseMode.REFUSE) {
      const type = headers['content-type'];
      // onResponseError answers the client; the upstream's body is never read.
      controller.abort(
        new UpstreamInvalidResponseError(`a ${statusCode} answer to requests with content type ${type === undefined ? '(none)' : JSON.stringify(type)}`),
      );
      return;
    }
    // Recorded before the client can learn the session id and use it (session-owners.ts).
    const sessionId = headers['mcp-session-id'];
    if (this.onSession !== undefined && typeof sessionId === 'string' && statusCode < 300) this.onSession(sessionId);
    if (this.listFilter !== undefined && !this.#beginFilter(controller, headers)) return;
    if (this.mode !== ResponseMode.STREAM) {
      // Held until complete: a stall or a broken answer can still become a JSON-RPC error. undici's
      // own bodyTimeout cannot be used: it is fixed before the content type is known, and SSE
      // streams must stay open however quiet they are.
      this.endpointRewriter = undefined;
      this.heldHeaders = out;
      this.held = [];
      this.idleTimer = setTimeout(idleExpired, this.proxy.bodyIdleTimeoutMs, this);
      return;
    }
    // The rewritten endpoint event and filtered list events change the body's length.
    if (this.endpointRewriter !== undefined || this.listFilter !== undefined) delete out['content-length'];
    this.res.writeHead(statusCode, out);
    // An SSE stream may carry no event for a long time (the GET stream often carries none), and the
    // client must see its headers now. A body already in the same read reaches onResponseData before
    // the tick ends and carries the headers with it, which saves a write per response.
    if (headers['content-length'] === undefined) {
      this.eventStream = true;
      markEventStream(this.res);
      // A compressed stream cannot be read here; it passes unwatched.
      if (statusCode < 300 && !isEncoded(headers)) this.watch = this.#watchFor();
      process.nextTick(this.flushIfIdle);
    } else {
      this.endpointRewriter = undefined;
    }
  }

  /**
   * Readies the list filter for this response; false when the exchange was aborted instead. A JSON
   * answer is held by the usual HOLD modes (so it is filtered once complete); an answer that is
   * neither JSON nor SSE has no list to filter; a compressed one cannot be filtered and is refused
   * (it was asked for with `Accept-Encoding: identity`), never passed on unfiltered.
   */
  #beginFilter(controller: Dispatcher.DispatchController, headers: IncomingHttpHeaders): boolean {
    const filter = this.listFilter as ListAnswerFilter;
    if (!filter.begin(headers) || (filter.mode === 'json' && this.mode === ResponseMode.STREAM)) {
      this.listFilter = undefined;
      return true;
    }
    if (!isEncoded(headers)) return true;
    this.listFilter = undefined;
    controller.abort(new UpstreamInvalidResponseError('a compressed answer to a list request the gateway must filter'));
    return false;
  }

  /** The watch for a successful SSE answer: to a POST, its requests; on an HTTP+SSE GET, its session's. */
  #watchFor(): SseAnswerWatch | undefined {
    if (this.endpointRewriter !== undefined) return new SseAnswerWatch([], { persistent: true });
    if (!this.checked) return undefined;
    const ids = requestIdsOf(this.messages);
    return ids.length > 0 ? new SseAnswerWatch(ids) : undefined;
  }

  readonly flushIfIdle = (): void => {
    if (!this.wroteBody && !this.clientClosed && !this.res.destroyed) this.res.flushHeaders();
  };

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.clientClosed) return;
    if (this.res.writableEnded) {
      // Ended by the shutdown drain while the upstream still sends: nothing more may be written.
      this.onClientClose();
      return;
    }
    if (this.idleTimer !== undefined) this.idleTimer.refresh();
    if (this.held !== undefined) {
      this.#hold(controller, chunk);
      return;
    }
    const rewriter = this.endpointRewriter;
    if (rewriter !== undefined) {
      try {
        chunk = rewriter.push(chunk);
      } catch (error) {
        this.clientClosed = true;
        this.proxy.badEndpoint(this, error instanceof SseEndpointError ? error : new SseEndpointError(String(error)));
        return;
      }
      if (rewriter.done) {
        this.endpointRewriter = undefined;
        this.proxy.legacyStreamOpened(this, rewriter.endpoint!);
      }
      if (chunk.byteLength === 0) return;
    }
    if (this.listFilter === undefined) this.#write(controller, chunk);
    else {
      // The client gets the filtered events; an unfinished event waits in the filter for its end.
      const passed = this.listFilter.events(chunk);
      if (passed.byteLength > 0) this.#write(controller, passed);
    }
    // The watch reads what the upstream sent: a filtered list answer still answers its request, and
    // its id is recorded from the upstream's own bytes whatever the filter made of the event.
    this.watch?.push(chunk);
  }

  #write(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.wroteBody = true;
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', this.onDrain);
    }
  }

  #hold(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const held = this.held!;
    held.push(chunk);
    this.heldBytes += chunk.byteLength;
    if (this.listFilter !== undefined) {
      // A list answer is filtered whole or not sent at all: past its cap the exchange fails closed (502).
      if (this.heldBytes > MAX_HELD_ANSWER_BYTES) controller.abort(new ListAnswerTooLarge());
      return;
    }
    if (this.heldBytes <= HELD_BODY_MAX_BYTES) return;
    // Too big to hold: send what there is and stream the rest unchecked; the idle timer stays, so a
    // stall still ends the exchange (by cutting the response: its status line is gone).
    this.held = undefined;
    this.res.writeHead(this.statusCode, this.heldHeaders);
    for (let i = 0; i < held.length - 1; i++) this.res.write(held[i]);
    this.#write(controller, held[held.length - 1]!);
  }

  onResponseEnd(): void {
    this.#stopIdleTimer();
    this.proxy.legacyStreamClosed(this);
    this.res.removeListener('close', this.onClientClose);
    if (this.clientClosed) return;
    const held = this.held;
    if (held === undefined) {
      if (this.watch !== undefined) this.proxy.endStream(this);
      else this.res.end();
      return;
    }
    this.held = undefined;
    let body = held.length === 1 ? held[0]! : Buffer.concat(held, this.heldBytes);
    if (this.mode === ResponseMode.HOLD_CHECK_JSON) {
      const problem = jsonAnswerProblem(body);
      if (problem !== undefined) {
        this.proxy.fail(this, new UpstreamInvalidResponseError(problem));
        return;
      }
    }
    const out = this.heldHeaders!;
    if (this.listFilter !== undefined) {
      // Checked first, so the filter only ever sees what MCP allows; filtered before anything is sent.
      body = this.listFilter.filterBody(body);
      out['content-length'] = String(body.byteLength);
    }
    // The upstream may have sent it chunked; the whole body is known now. 204 and 304 carry no length.
    else if (out['content-length'] === undefined && this.statusCode !== 204 && this.statusCode !== 304) out['content-length'] = String(body.byteLength);
    this.res.writeHead(this.statusCode, out);
    this.res.end(body);
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, error: Error): void {
    this.#stopIdleTimer();
    this.proxy.legacyStreamClosed(this);
    this.#postFailed();
    this.res.removeListener('close', this.onClientClose);
    if (error instanceof SseEndpointError) return;
    if (this.clientClosed || error instanceof ClientClosedError) {
      this.proxy.clientGone(this);
      return;
    }
    this.held = undefined;
    if (this.res.headersSent) this.proxy.broke(this, error);
    else this.proxy.fail(this, error);
  }

  #stopIdleTimer(): void {
    if (this.idleTimer === undefined) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }
}

/** The held body paused for longer than the server allows: give up on the upstream (onResponseError answers). */
function idleExpired(exchange: Exchange): void {
  exchange.idleTimer = undefined;
  exchange.controller?.abort(new UpstreamIdleError(exchange.proxy.bodyIdleTimeoutMs));
}

/** Copies end-to-end request headers into undici's flat `[name, value, …]` form. */
function forwardedRequestHeaders(headers: IncomingHttpHeaders, drop: { has(name: string): boolean }, dropLength: boolean): string[] {
  const out: string[] = [];
  const named = connectionTokens(headers.connection);
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || STRIPPED_REQUEST.has(name) || drop.has(name) || forwardingHeader(name)) continue;
    if (named?.has(name)) continue;
    if (dropLength && name === 'content-length') continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (typeof value === 'string') out.push(name, value);
    else for (const item of value) out.push(name, item);
  }
  return out;
}

function responseHeadersFrom(headers: IncomingHttpHeaders, extra: Readonly<Record<string, string>> | undefined): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const named = connectionTokens(headers.connection);
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || strippedResponseHeader(name)) continue;
    if (named?.has(name)) continue;
    const value = headers[name];
    if (value !== undefined) out[name] = value;
  }
  if (extra) {
    for (const name in extra) {
      const value = extra[name];
      if (value === undefined) continue;
      // `vary` from the upstream is kept and extended rather than replaced.
      const existing = out[name];
      out[name] = name === 'vary' && typeof existing === 'string' ? `${existing}, ${value}` : value;
    }
  }
  return out;
}

/** RFC 9110 §7.6.1: the `Connection` header lists further hop-by-hop fields. */
function connectionTokens(value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  const text = Array.isArray(value) ? value.join(',') : value;
  if (text === 'keep-alive' || text === 'close') return undefined;
  const tokens = new Set<string>();
  for (const token of text.split(',')) {
    const trimmed = token.trim().toLowerCase();
    if (trimmed) tokens.add(trimmed);
  }
  return tokens;
}

/** The abort reason handed to undici when the client leaves first; never shown to anyone. */
class ClientClosedError extends GatewayError {
  constructor() {
    super(ErrorCode.PROXY_CLIENT_GONE, 'client closed the connection');
    this.name = 'ClientClosedError';
  }
}

function errorCode(error: Error): string | undefined {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  const cause = (error as { cause?: { code?: unknown } }).cause;
  return typeof cause?.code === 'string' ? cause.code : undefined;
}

function ignore(): void {}

/** The drop set plus the client's `Accept-Encoding`, for a request whose answer is filtered. */
function dropWithEncoding(drop: { has(name: string): boolean }): { has(name: string): boolean } {
  return { has: (name) => name === 'accept-encoding' || drop.has(name) };
}

/** `application/json` with or without parameters (`; charset=utf-8`). */
function isJson(type: string | undefined): boolean {
  return type !== undefined && type.slice(0, 16).toLowerCase() === 'application/json' && (type.length === 16 || type[16] === ';' || type[16] === ' ');
}

/**
 * TCP keep-alive on every upstream socket, probing after 30 s of silence every 10 s, 3 times: an SSE
 * stream may rightly stay quiet for hours, so no idle timeout may cut it, but an upstream host that
 * vanished without closing the connection (power loss, a dropped NAT mapping) must not hold the
 * client's stream forever. The kernel's probes find it within about a minute; the stream then breaks
 * like any other (`broke`: unanswered requests get their error events). undici's own connector only
 * sets the first delay (60 s), leaving the interval and count to the system (75 s × 9 on Linux).
 */
const DEAD_PEER_PROBE = { enable: true, initialDelay: 30_000, interval: 10_000, count: 3 } as const;

function withDeadPeerDetection(connector: buildConnector.connector): buildConnector.connector {
  return (options, callback) =>
    connector(options, (...args) => {
      args[1]?.setKeepAlive(DEAD_PEER_PROBE);
      callback(...args);
    });
}

/**
 * One keep-alive pool per upstream origin: a new connection per request would add a TCP (and TLS)
 * handshake to every MCP call.
 * The connect timeout is the shortest response timeout of the servers sharing the origin, so an
 * unreachable host is reported within that server's `upstreamTimeoutMs`.
 */
export class UpstreamPools {
  readonly #pools = new Map<string, UpstreamPool>();
  readonly #connectTimeouts = new Map<string, number>();
  readonly #renewTimer: NodeJS.Timeout;

  constructor(options: { renewIntervalMs?: number } = {}) {
    this.#renewTimer = setInterval(() => this.renewIdle(), options.renewIntervalMs ?? 30_000);
    this.#renewTimer.unref();
  }

  /** Call for every server before the first `get` so each origin learns its shortest timeout. */
  register(url: string, timeoutMs: number): void {
    const origin = new URL(url).origin;
    const current = this.#connectTimeouts.get(origin);
    this.#connectTimeouts.set(origin, Math.min(current ?? 10_000, timeoutMs));
  }

  get(url: string): UpstreamPool {
    const origin = new URL(url).origin;
    let pool = this.#pools.get(origin);
    if (!pool) {
      pool = new UpstreamPool(origin, this.#connectTimeouts.get(origin) ?? 10_000);
      this.#pools.set(origin, pool);
    }
    return pool;
  }

  /** Renews every pool that keeps far more clients than it uses (UpstreamPool.renewIfOversized). */
  renewIdle(): void {
    for (const pool of this.#pools.values()) pool.renewIfOversized();
  }

  /** Each pool's connections and requests (undici's pool stats), for the metrics scrape. */
  stats(): Array<{ upstream: string; connected: number; free: number; pending: number; running: number }> {
    return [...this.#pools].map(([upstream, pool]) => {
      const { connected, free, pending, running } = pool.stats;
      return { upstream, connected, free, pending, running };
    });
  }

  /** Lets in-flight responses finish for up to `graceMs`, then cuts what is left (open SSE streams). */
  async close(graceMs = 1_000): Promise<void> {
    clearInterval(this.#renewTimer);
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((pool) => pool.close(graceMs)));
  }
}

/**
 * An undici `Pool` that can be swapped for a fresh one. undici's pool keeps every client (connection
 * slot) it ever created: a peak of 9,000 concurrent SSE streams leaves 9,000 client objects behind
 * after the streams end (docs/performance.md, "Memory"), though their sockets are closed. When the
 * pool has created many more clients than it has connected, new requests go to a new pool, and the
 * old one is closed gracefully: the requests still running on it (long SSE streams) finish there.
 */
export class UpstreamPool {
  readonly #origin: string;
  readonly #connectTimeoutMs: number;
  #current: Pool;
  /** Clients the current pool has created: undici never drops one, so this is its size. */
  #clients = 0;
  readonly #retired = new Set<Pool>();

  constructor(origin: string, connectTimeoutMs: number) {
    this.#origin = origin;
    this.#connectTimeoutMs = connectTimeoutMs;
    this.#current = this.#create();
  }

  /** Clients held by the pool taking new requests (for tests and diagnostics). */
  get clientCount(): number {
    return this.#clients;
  }

  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    return this.#current.dispatch(options, handler);
  }

  /**
   * undici's pool stats summed over the pool taking new requests and the retired ones still finishing
   * theirs (long SSE streams): the metrics scrape counts every live connection to the origin.
   */
  get stats(): { connected: number; free: number; pending: number; running: number } {
    const total = { connected: 0, free: 0, pending: 0, running: 0 };
    for (const pool of [this.#current, ...this.#retired]) {
      const { connected, free, pending, running } = pool.stats;
      total.connected += connected;
      total.free += free;
      total.pending += pending;
      total.running += running;
    }
    return total;
  }

  /**
   * Swaps the pool when it holds more than RENEW_MIN_CLIENTS clients and fewer than a quarter of them
   * are connected. The check walks the clients, so it runs on a timer, never per request.
   */
  renewIfOversized(): boolean {
    if (this.#clients <= RENEW_MIN_CLIENTS) return false;
    const old = this.#current;
    if (old.stats.connected * 4 > this.#clients) return false;
    this.#current = this.#create();
    this.#retired.add(old);
    old.close().then(
      () => this.#retired.delete(old),
      () => this.#retired.delete(old),
    );
    return true;
  }

  #create(): Pool {
    this.#clients = 0;
    const connect = withDeadPeerDetection(buildConnector({ timeout: this.#connectTimeoutMs }));
    return new Pool(this.#origin, {
      connect,
      // Node's default server keep-alive is 5 s; staying below it avoids reusing a socket the
      // upstream is about to close.
      keepAliveTimeout: 4_000,
      factory: (origin, options) => {
        this.#clients++;
        return new Client(origin, options);
      },
    });
  }

  /** Lets in-flight responses finish for up to `graceMs`, then cuts what is left (open SSE streams). */
  async close(graceMs: number): Promise<void> {
    const pools = [this.#current, ...this.#retired];
    this.#retired.clear();
    await Promise.all(
      pools.map(async (pool) => {
        let timer: NodeJS.Timeout | undefined;
        const graceful = pool.close().then(
          () => true,
          () => true,
        );
        const expired = new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), graceMs);
        });
        const closed = await Promise.race([graceful, expired]);
        clearTimeout(timer);
        if (!closed) await pool.destroy().catch(() => undefined);
      }),
    );
  }
}

/** Below this many clients a pool is never renewed: a few idle client objects cost nothing. */
const RENEW_MIN_CLIENTS = 64;
