/**
 * Reading a client's POST for the bridge's two transports: the capped body (src/http/body.ts), then
 * its JSON-RPC messages (src/core/jsonrpc.ts decides what a message is; JSON-RPC 2.0 §5.1: -32700 for
 * invalid JSON, -32600 for anything that is not a request, notification or response).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { isJsonRpcProblem, JsonRpcCode, parseJsonRpcBody, sendJsonRpcError } from '../core/jsonrpc.ts';
import { BodyTooLargeError, readCappedBody } from '../http/body.ts';
import { noteMcpMessage } from '../observability/mcp-requests.ts';

/** What reading a client's POST needs from the transport: its body cap and its refusal log. */
export interface MessageReader {
  maxBodyBytes: number;
  refused: (reason: string) => void;
}

/**
 * Reads and validates a client's POST body. On failure the answer (413 or a JSON-RPC parse/invalid
 * request error) has been sent, or the client has already gone, and undefined is returned.
 */
export async function readClientMessages(
  req: IncomingMessage,
  res: ServerResponse,
  reader: MessageReader,
): Promise<{ messages: JSONRPCMessage[]; batch: boolean } | undefined> {
  let body: Buffer;
  try {
    body = await readCappedBody(req, reader.maxBodyBytes);
  } catch (error) {
    if (!(error instanceof BodyTooLargeError)) {
      // The client left mid-upload: nobody is there to answer.
      res.destroy();
      return undefined;
    }
    reader.refused('request body too large');
    sendJsonRpcError(res, 413, JsonRpcCode.REQUEST_TOO_LARGE, `Request body exceeds the limit of ${error.limitBytes} bytes`, { connection: 'close' });
    return undefined;
  }
  const parsed = parseJsonRpcBody(body.toString('utf8'));
  if (isJsonRpcProblem(parsed)) {
    reader.refused(parsed.message);
    sendJsonRpcError(res, 400, parsed.code, parsed.message, undefined, parsed.id);
    return undefined;
  }
  noteMcpMessage(req, parsed); // the method and tool labels of the request metrics
  return Array.isArray(parsed) ? { messages: parsed, batch: true } : { messages: [parsed], batch: false };
}
