/**
 * Reading a client's POST for the bridge's two transports: the capped body, then its JSON-RPC messages
 * (src/core/jsonrpc.ts decides what a message is; JSON-RPC 2.0 §5.1: -32700 for invalid JSON, -32600
 * for anything that is not a request, notification or response).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { isJsonRpcProblem, JsonRpcCode, parseJsonRpcBody, sendJsonRpcError } from '../core/jsonrpc.ts';

/** Reads a request body as UTF-8; rejects past `limit` bytes (the rest is drained, not kept). */
export function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    req.on('data', (chunk: Buffer) => {
      total += chunk.length;
      if (total > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(new Error('request body too large'));
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });
}

/** What reading a client's POST needs from the transport: its capped reader and its refusal log. */
export interface MessageReader {
  readBody: (req: IncomingMessage) => Promise<string>;
  refused: (reason: string) => void;
}

/**
 * Reads and validates a client's POST body. On failure the answer (413 or a JSON-RPC parse/invalid
 * request error) has been sent and undefined is returned.
 */
export async function readClientMessages(req: IncomingMessage, res: ServerResponse, reader: MessageReader): Promise<{ messages: JSONRPCMessage[]; batch: boolean } | undefined> {
  let body: string;
  try {
    body = await reader.readBody(req);
  } catch {
    sendJsonRpcError(res, 413, JsonRpcCode.REQUEST_TOO_LARGE, 'Request body too large', { connection: 'close' });
    return undefined;
  }
  const parsed = parseJsonRpcBody(body);
  if (isJsonRpcProblem(parsed)) {
    reader.refused(parsed.message);
    sendJsonRpcError(res, 400, parsed.code, parsed.message, undefined, parsed.id);
    return undefined;
  }
  return Array.isArray(parsed) ? { messages: parsed, batch: true } : { messages: [parsed], batch: false };
}
