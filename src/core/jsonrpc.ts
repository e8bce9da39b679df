/**
 * JSON-RPC 2.0 as the gateway speaks it, in one place: the message-shape rules, the error codes (each
 * number has exactly one meaning), and the writer of JSON-RPC error responses. The proxy (src/proxy)
 * and the stdio bridge (src/stdio) both use it, so a client gets the same answer for the same mistake
 * whichever kind of server sits behind the route.
 */
import type { ServerResponse } from 'node:http';
import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';
import { type ErrorCodeValue, GatewayError } from './errors.ts';

/**
 * Every JSON-RPC error code the gateway itself puts on the wire. The first five are JSON-RPC 2.0's own
 * (§5.1). The rest sit in the range §5.1 reserves for implementation-defined server errors
 * (-32000 to -32099). Numbers the MCP SDK or the MCP specification already give a meaning in that range
 * keep that meaning here (-32000 connection closed, -32001 request timeout), and numbers an upstream
 * MCP server may send through the gateway with another meaning are left unused (-32002 is MCP's
 * "Resource not found", -32042 the SDK's "URL elicitation required"), so a client never has to guess
 * whether the gateway or the server spoke.
 */
export const JsonRpcCode = {
  /** §5.1: the body is not valid JSON. */
  PARSE_ERROR: -32700,
  /** §5.1: valid JSON, but not a JSON-RPC message (or a message MCP forbids, such as a null request id). */
  INVALID_REQUEST: -32600,
  /** §5.1: no such method; the bridge answers a server's request that no connected client can take. */
  METHOD_NOT_FOUND: -32601,
  /** §5.1: the method exists, its parameters do not fit. */
  INVALID_PARAMS: -32602,
  /** §5.1: the gateway failed in a way that is not the client's doing. */
  INTERNAL_ERROR: -32603,
  /**
   * The MCP server behind the route cannot answer now: unreachable, exited, could not start, being
   * restarted, or the gateway is shutting down. Retrying later may work. (The SDK's "connection closed".)
   */
  SERVER_UNAVAILABLE: -32000,
  /** The MCP server did not answer within the route's time limit. (The SDK's "request timeout".) */
  SERVER_TIMEOUT: -32001,
  // -32002 is left out on purpose: MCP servers use it for "Resource not found".
  /** A stdio server's per-user process cap is reached; retry once another user's process stops. */
  TOO_MANY_PROCESSES: -32003,
  /** The user's IdP token, needed for the server process's environment, could not be obtained. */
  IDP_TOKEN_UNAVAILABLE: -32004,
  /** The request body is larger than the route allows (sent with HTTP 413). */
  REQUEST_TOO_LARGE: -32005,
  /** `Mcp-Session-Id` names no session of this user (sent with HTTP 404: MCP Transports, start a new one). */
  SESSION_NOT_FOUND: -32006,
  /**
   * The HTTP request breaks a rule of the MCP transport (method, path, `Accept`, `Content-Type`,
   * `Mcp-Session-Id`, `MCP-Protocol-Version`, one GET stream per session); the HTTP status says which kind.
   */
  TRANSPORT_REFUSED: -32007,
  /** The gateway refuses the request before any server sees it (an `Origin` not allowed, a missing bridge secret). */
  FORBIDDEN: -32008,
  /**
   * The MCP server answered with something the MCP transport does not allow (a content type other than
   * JSON or SSE, a body that is not JSON-RPC); sent with HTTP 502. The server is up but broken.
   */
  UPSTREAM_INVALID_RESPONSE: -32009,
  /**
   * `servers[].toolAccess` does not let this person use the tool, prompt or resource, and no wider
   * scope would (a scope that would gets the 403 step-up challenge instead; docs/policy.md).
   */
  NOT_PERMITTED: -32010,
  /**
   * MCP's own `HeaderMismatch` (Streamable HTTP 2026-07-28, "Server Validation"): an `Mcp-Method` or
   * `Mcp-Name` header disagrees with the body, sent with HTTP 400.
   */
  HEADER_MISMATCH: -32020,
  /**
   * A rate limit of the route refuses the call (sent with HTTP 429 and `Retry-After`: docs/rate-limits.md).
   * -32029 rather than the next number, so it reads as the 429 it comes with; no MCP server or the SDK
   * gives it another meaning.
   */
  RATE_LIMITED: -32029,
} as const;

export type JsonRpcCodeValue = (typeof JsonRpcCode)[keyof typeof JsonRpcCode];

/** An error the gateway answers with: code, public message, and the request id when one was read. */
export interface JsonRpcProblem {
  code: JsonRpcCodeValue;
  message: string;
  id: RequestId | null;
}

/**
 * A `GatewayError` that reaches the client as a JSON-RPC error: `code` for programs and logs,
 * `rpcCode` for the wire, `message` public.
 */
export class JsonRpcFailure extends GatewayError {
  readonly rpcCode: JsonRpcCodeValue;
  constructor(code: ErrorCodeValue, rpcCode: JsonRpcCodeValue, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.name = 'JsonRpcFailure';
    this.rpcCode = rpcCode;
  }
}

export interface JsonRpcRequest {
  jsonrpc: '2.0';
  id: RequestId;
  method: string;
  params?: Record<string, unknown>;
}

export interface JsonRpcNotification {
  jsonrpc: '2.0';
  method: string;
  params?: Record<string, unknown>;
}

export interface JsonRpcResponse {
  jsonrpc: '2.0';
  id: RequestId | null;
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
}

/**
 * A request id as MCP allows it (MCP Basic, Requests: "a string or integer ID. Unlike base JSON-RPC,
 * the ID MUST NOT be null"). JSON-RPC 2.0 §4 already discourages null and fractions.
 */
export function isRequestId(value: unknown): value is RequestId {
  return typeof value === 'string' || Number.isInteger(value);
}

/**
 * Why `value` is not one JSON-RPC message MCP allows, or undefined when it is one. Returns no object
 * for a good message, so the proxy's check of every request body allocates nothing.
 *
 * - A request has a string `method` and a string or integer `id`; `id: null` is refused (MCP).
 * - A notification has a string `method` and no `id` member at all (JSON-RPC 2.0 §4.1).
 * - A response has `result` and the request's id, or `error` and an id that may be null when the
 *   request's id could not be read (JSON-RPC 2.0 §5).
 */
export function jsonRpcMessageProblem(value: unknown): JsonRpcProblem | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { code: JsonRpcCode.INVALID_REQUEST, message: 'Invalid Request: not a JSON-RPC message object', id: null };
  }
  const message = value as Record<string, unknown>;
  const id = message.id;
  const knownId = isRequestId(id) ? id : null;
  if (message.jsonrpc !== '2.0') return invalid('"jsonrpc" must be "2.0"', knownId);
  if (typeof message.method === 'string') {
    if (id === undefined || knownId !== null) return undefined;
    return invalid('a request "id" must be a string or an integer, never null', null);
  }
  if ('result' in message ? knownId !== null : 'error' in message && (knownId !== null || id === null)) return undefined;
  return invalid('a message needs a "method", or an "id" with "result" or "error"', knownId);
}

function invalid(reason: string, id: RequestId | null): JsonRpcProblem {
  return { code: JsonRpcCode.INVALID_REQUEST, message: `Invalid Request: ${reason}`, id };
}

/** One JSON-RPC message MCP allows (see `jsonRpcMessageProblem`). */
export function isJsonRpcMessage(value: unknown): value is JSONRPCMessage {
  return jsonRpcMessageProblem(value) === undefined;
}

/**
 * A request body as one message or a batch (batches were allowed before MCP 2025-06-18; every member
 * must be a message, and an empty one is invalid: JSON-RPC 2.0 §6), or the problem to answer with.
 * One parse, no copy: the parsed value is returned as it is.
 */
export function parseJsonRpcBody(text: string): JSONRPCMessage | JSONRPCMessage[] | JsonRpcProblem {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { code: JsonRpcCode.PARSE_ERROR, message: 'Parse error: the request body is not valid JSON', id: null };
  }
  if (!Array.isArray(value)) return jsonRpcMessageProblem(value) ?? (value as JSONRPCMessage);
  if (value.length === 0) return invalid('empty batch', null);
  for (const item of value) {
    const problem = jsonRpcMessageProblem(item);
    if (problem) return problem;
  }
  return value as JSONRPCMessage[];
}

/** True for what `parseJsonRpcBody` returns instead of messages. */
export function isJsonRpcProblem(parsed: JSONRPCMessage | JSONRPCMessage[] | JsonRpcProblem): parsed is JsonRpcProblem {
  return !Array.isArray(parsed) && (parsed as { jsonrpc?: unknown }).jsonrpc === undefined;
}

export function isRequest(message: JSONRPCMessage): message is JSONRPCMessage & JsonRpcRequest {
  return 'method' in message && (message as { id?: unknown }).id !== undefined;
}

export function isNotification(message: JSONRPCMessage): message is JSONRPCMessage & JsonRpcNotification {
  return 'method' in message && (message as { id?: unknown }).id === undefined;
}

export function isResponse(message: JSONRPCMessage): message is JSONRPCMessage & JsonRpcResponse {
  return !('method' in message);
}

/** An error response to the request with `id`. */
export function errorResponse(id: RequestId, code: number, message: string): JSONRPCMessage {
  return { jsonrpc: '2.0', id, error: { code, message } } as JSONRPCMessage;
}

/** Map key for a request id: `1` and `"1"` are different ids (JSON-RPC 2.0 §4). */
export function idKey(id: RequestId): string {
  return typeof id === 'number' ? `n${id}` : `s${id}`;
}

/**
 * Answers an HTTP request with one JSON-RPC error. `id` is null unless the body was read and carried
 * one (JSON-RPC 2.0 §5: null when it could not be determined). When the response has already started
 * (a stream), it is ended instead: a status line cannot be sent twice.
 */
export function sendJsonRpcError(
  res: ServerResponse,
  status: number,
  code: JsonRpcCodeValue,
  message: string,
  headers?: Readonly<Record<string, string>>,
  id: RequestId | null = null,
): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const body = JSON.stringify({ jsonrpc: '2.0', id, error: { code, message } });
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}
