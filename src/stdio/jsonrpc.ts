/**
 * JSON-RPC 2.0 shapes and error codes the bridge uses (JSON-RPC 2.0 §5.1; MCP reserves -32000…-32099
 * for implementation-defined server errors).
 */
import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';

export const PARSE_ERROR = -32700;
export const INVALID_REQUEST = -32600;
export const METHOD_NOT_FOUND = -32601;
export const INTERNAL_ERROR = -32603;
/** The stdio server is not running: it exited, could not start, or is restarting. */
export const SERVER_UNAVAILABLE = -32000;
/** The per-user process cap is reached. */
export const TOO_MANY_PROCESSES = -32003;
/** The user's IdP token for the process environment could not be obtained. */
export const IDP_TOKEN_UNAVAILABLE = -32004;

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

export function isRequest(message: JSONRPCMessage): message is JSONRPCMessage & JsonRpcRequest {
  return 'method' in message && 'id' in message && message.id !== undefined;
}

export function isNotification(message: JSONRPCMessage): message is JSONRPCMessage & JsonRpcNotification {
  return 'method' in message && !('id' in message && message.id !== undefined);
}

export function isResponse(message: JSONRPCMessage): message is JSONRPCMessage & JsonRpcResponse {
  return !('method' in message);
}

export function errorResponse(id: RequestId, code: number, message: string): JSONRPCMessage {
  return { jsonrpc: '2.0', id, error: { code, message } } as JSONRPCMessage;
}

/** An error that carries its JSON-RPC code to the client. */
export class BridgeError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.name = 'BridgeError';
    this.code = code;
  }
}

/** Map key for a request id: `1` and `"1"` are different ids (JSON-RPC 2.0 §4). */
export function idKey(id: RequestId): string {
  return typeof id === 'number' ? `n${id}` : `s${id}`;
}
