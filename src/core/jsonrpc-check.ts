/**
 * A cheap shape check of small JSON request bodies before they go upstream, so a client that sends
 * broken JSON gets the JSON-RPC 2.0 answer (§5.1: -32700 Parse error, -32600 Invalid Request) from the
 * gateway rather than whatever each upstream makes of it. Only bodies up to `JSON_CHECK_MAX_BYTES` with
 * a declared length are checked; larger or chunked bodies are streamed unchecked so that big uploads
 * are never held in memory.
 */

export const JSON_CHECK_MAX_BYTES = 64 * 1024;

export const JSONRPC_PARSE_ERROR = -32700;
export const JSONRPC_INVALID_REQUEST = -32600;

export type JsonRpcProblem = { code: number; message: string; id: string | number | null };

/** Returns undefined for a well-formed JSON-RPC message or batch, else the error to answer with. */
export function checkJsonRpcBody(body: Buffer): JsonRpcProblem | undefined {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return { code: JSONRPC_PARSE_ERROR, message: 'Parse error: the request body is not valid JSON', id: null };
  }
  if (Array.isArray(value)) {
    // Batches (allowed before 2025-06-18): every member must be a message.
    if (value.length === 0) return { code: JSONRPC_INVALID_REQUEST, message: 'Invalid Request: empty batch', id: null };
    for (const item of value) {
      const problem = checkMessage(item);
      if (problem) return problem;
    }
    return undefined;
  }
  return checkMessage(value);
}

/** A request, notification, or a client's response to a server request (result or error). */
function checkMessage(value: unknown): JsonRpcProblem | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { code: JSONRPC_INVALID_REQUEST, message: 'Invalid Request: not a JSON-RPC message object', id: null };
  }
  const message = value as Record<string, unknown>;
  const id = typeof message.id === 'string' || typeof message.id === 'number' ? message.id : null;
  if (message.jsonrpc !== '2.0') return { code: JSONRPC_INVALID_REQUEST, message: 'Invalid Request: "jsonrpc" must be "2.0"', id };
  if (typeof message.method === 'string') return undefined;
  if (id !== null && ('result' in message || 'error' in message)) return undefined;
  return { code: JSONRPC_INVALID_REQUEST, message: 'Invalid Request: a message needs a "method", or an "id" with "result" or "error"', id };
}
