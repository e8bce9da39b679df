/**
 * What the proxy does with an upstream MCP server's response, decided from its status line and
 * headers: pass an SSE stream through as it arrives, or hold a finite body until it is complete so that
 * a server that stalls or sends something MCP does not allow still gets the client a proper JSON-RPC
 * error instead of a half-sent or mislabelled answer.
 *
 * MCP Transports (Streamable HTTP, "Sending Messages to the Server"): a POST carrying requests is
 * answered with `Content-Type: application/json` (one JSON-RPC response or a batch of them) or
 * `text/event-stream`; a POST carrying only notifications or responses with 202 and no body. Anything
 * else from a server that answered a POST with requests 2xx is a broken server, answered 502 here.
 *
 * Held bodies are capped (`HELD_BODY_MAX_BYTES`): past the cap the headers and what was held go out and
 * the rest streams, unchecked, as before; memory per request stays bounded whatever the server sends.
 */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';
import { ErrorCode, GatewayError } from '../core/errors.ts';
import { isRequest, type JsonRpcCodeValue, jsonRpcMessageProblem } from '../core/jsonrpc.ts';
import { scanJsonRpcBody } from '../core/jsonrpc-scan.ts';

/**
 * Largest body held back before the headers go out. MCP JSON answers are usually a few KiB; a tool
 * result with an embedded image can reach a few MiB and then streams unchecked past this point.
 */
export const HELD_BODY_MAX_BYTES = 1024 * 1024;

/** How a response is handled, chosen once from its status and headers. */
export const ResponseMode = {
  /** SSE: every chunk is written the moment it arrives (never buffered). */
  STREAM: 0,
  /** Held until complete, then sent as it came (error statuses, legacy transport, bodies MCP leaves free). */
  HOLD: 1,
  /** Held until complete, then checked as JSON-RPC (a 2xx JSON answer to a Streamable HTTP POST). */
  HOLD_CHECK_JSON: 2,
  /** Refused at once: a 2xx answer to a POST with requests whose content type is neither JSON nor SSE. */
  REFUSE: 3,
} as const;

export type ResponseModeValue = (typeof ResponseMode)[keyof typeof ResponseMode];

/**
 * The mode for one response. `checked` is true for answers to a Streamable HTTP POST that carried
 * requests, where the content type is MCP's to decide. Not otherwise: the older HTTP+SSE transport
 * answers its POSTs `202 Accepted` with any body, GET/DELETE answers are not JSON-RPC, and a POST of
 * only notifications or responses is owed nothing (MCP says 202 and no body, but clients such as the
 * MCP SDK ignore whatever a lenient server sends instead, and so does the gateway).
 */
export function responseMode(statusCode: number, headers: IncomingHttpHeaders, checked: boolean): ResponseModeValue {
  const type = headers['content-type'];
  if (isEventStream(type)) return ResponseMode.STREAM;
  if (!checked || statusCode < 200 || statusCode >= 300 || statusCode === 202 || statusCode === 204) return ResponseMode.HOLD;
  if (!isJsonType(type)) return ResponseMode.REFUSE;
  // A compressed answer (the client's Accept-Encoding reaches the upstream) is passed on as it is:
  // decompressing it only to check it would cost more than the check is worth.
  return isEncoded(headers) ? ResponseMode.HOLD : ResponseMode.HOLD_CHECK_JSON;
}

/** The body has a content coding (gzip, br, …), so its bytes are not the JSON or SSE text itself. */
export function isEncoded(headers: IncomingHttpHeaders): boolean {
  const coding = headers['content-encoding'];
  return coding !== undefined && coding !== '' && coding.toLowerCase() !== 'identity';
}

/** `text/event-stream`, with or without parameters. */
export function isEventStream(type: string | undefined): boolean {
  return isMediaType(type, 'text/event-stream');
}

/** `application/json` with or without parameters (`; charset=utf-8`). */
export function isJsonType(type: string | undefined): boolean {
  return isMediaType(type, 'application/json');
}

/** `type` names `essence` (case-insensitively), with or without parameters. */
function isMediaType(type: string | undefined, essence: string): boolean {
  if (type === undefined || type.length < essence.length) return false;
  if (type.length > essence.length && type[essence.length] !== ';' && type[essence.length] !== ' ') return false;
  return type.slice(0, essence.length).toLowerCase() === essence;
}

/**
 * Answers up to this size are parsed whole and checked as JSON-RPC: about 1 µs for a typical 100-byte
 * `tools/call` answer, then 4 to 5 µs per KiB (JSON.parse builds every object). Larger ones, rarer
 * (a big `tools/list`, a resource), only have their framing checked (0.2 µs whatever the size), so
 * the check never costs more than about 75 µs per answer on the hot path.
 */
export const ANSWER_CHECK_MAX_BYTES = 16 * 1024;

/**
 * Why a complete JSON answer body is not what MCP allows (for the log), or undefined when it is one
 * JSON-RPC message or a non-empty batch of them. One parse; nothing is allocated for a good body.
 */
export function jsonAnswerProblem(body: Buffer): string | undefined {
  if (body.byteLength > ANSWER_CHECK_MAX_BYTES) return framingProblem(body);
  // The byte-level check accepts the common good answer without building its objects; the full
  // parse below decides the rest (core/jsonrpc-scan.ts).
  if (scanJsonRpcBody(body) !== undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return 'the body is not valid JSON';
  }
  if (!Array.isArray(value)) return jsonRpcMessageProblem(value) === undefined ? undefined : 'the body is not a JSON-RPC message';
  if (value.length === 0) return 'the body is an empty batch';
  for (const item of value) if (jsonRpcMessageProblem(item) !== undefined) return 'a batch member is not a JSON-RPC message';
  return undefined;
}

/** A large answer must at least look like one JSON object or array (an HTML page or a cut body does not). */
function framingProblem(body: Buffer): string | undefined {
  let first = 0;
  while (first < body.byteLength && isJsonWhitespace(body[first]!)) first++;
  let last = body.byteLength - 1;
  while (last > first && isJsonWhitespace(body[last]!)) last--;
  const open = body[first];
  const close = body[last];
  if ((open === 0x7b && close === 0x7d) || (open === 0x5b && close === 0x5d)) return undefined;
  return 'the body is not a JSON object or array';
}

/** RFC 8259 §2: space, tab, LF, CR. */
function isJsonWhitespace(byte: number): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d;
}

/** True when the client's messages include a request, which is owed an answer. Allocates nothing. */
export function carriesRequest(messages: JSONRPCMessage | JSONRPCMessage[] | undefined): boolean {
  if (messages === undefined) return false;
  if (!Array.isArray(messages)) return isRequest(messages);
  for (const message of messages) if (isRequest(message)) return true;
  return false;
}

/** The ids of the requests among the messages a client sent (notifications and responses have none to answer). */
export function requestIdsOf(messages: JSONRPCMessage | JSONRPCMessage[] | undefined): RequestId[] {
  if (messages === undefined) return [];
  const ids: RequestId[] = [];
  for (const message of Array.isArray(messages) ? messages : [messages]) if (isRequest(message)) ids.push(message.id);
  return ids;
}

/**
 * Answers a failed exchange with a JSON-RPC error for each request the client sent, so a client that
 * matches answers by id gets its own (JSON-RPC 2.0 §6: a batch is answered with an array), or one error
 * with id null when no request id is known (§5). A response already under way is ended instead.
 */
export function sendUpstreamError(
  res: ServerResponse,
  status: number,
  code: JsonRpcCodeValue,
  message: string,
  headers: Readonly<Record<string, string>>,
  messages: JSONRPCMessage | JSONRPCMessage[] | undefined,
): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const ids = requestIdsOf(messages);
  const error = { code, message };
  const payload =
    Array.isArray(messages) && ids.length > 0
      ? ids.map((id) => ({ jsonrpc: '2.0', id, error }))
      : { jsonrpc: '2.0', id: ids.length === 1 ? ids[0] : null, error };
  const body = JSON.stringify(payload);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** The abort reason when a held body stops arriving for longer than the server's `upstreamBodyIdleTimeoutMs`. */
export class UpstreamIdleError extends GatewayError {
  constructor(idleMs: number) {
    super(ErrorCode.PROXY_UPSTREAM_IDLE, `no response data for ${idleMs} ms`);
    this.name = 'UpstreamIdleError';
  }
}

/** The upstream's answer breaks the MCP transport; `message` (for the log) says how. */
export class UpstreamInvalidResponseError extends GatewayError {
  constructor(message: string) {
    super(ErrorCode.PROXY_UPSTREAM_INVALID_RESPONSE, message);
    this.name = 'UpstreamInvalidResponseError';
  }
}
