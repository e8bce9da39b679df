/**
 * Small HTTP helpers shared by the bridge's two transports: JSON-RPC error bodies, a capped body
 * reader, and the parsing and validation of client messages (JSON-RPC 2.0 §5.1: -32700 for invalid
 * JSON, -32600 for anything that is not a request, notification or response).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { INVALID_REQUEST, PARSE_ERROR } from './jsonrpc.ts';
import { isJsonRpcMessage } from './process.ts';

/** Sends a JSON-RPC error with `id: null` (the request could not be read or routed). */
export function sendError(res: ServerResponse, status: number, code: number, message: string, headers?: Record<string, string>): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const body = JSON.stringify({ jsonrpc: '2.0', id: null, error: { code, message } });
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
  res.end(body);
}

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

export type ParsedMessages =
  | { ok: true; messages: JSONRPCMessage[]; batch: boolean }
  | { ok: false; code: number; message: string; reason: string };

/** Parses a POST body into JSON-RPC messages (a single one or a batch). */
export function parseMessages(body: string): ParsedMessages {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return { ok: false, code: PARSE_ERROR, message: 'Parse error: Invalid JSON', reason: 'invalid JSON' };
  }
  const batch = Array.isArray(parsed);
  const messages = (batch ? parsed : [parsed]) as unknown[];
  if (messages.length === 0 || !messages.every(isJsonRpcMessage)) {
    return { ok: false, code: INVALID_REQUEST, message: 'Invalid Request: not a JSON-RPC 2.0 message', reason: 'not JSON-RPC 2.0' };
  }
  return { ok: true, messages: messages as JSONRPCMessage[], batch };
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
    sendError(res, 413, -32000, 'Request body too large', { connection: 'close' });
    return undefined;
  }
  const parsed = parseMessages(body);
  if (!parsed.ok) {
    reader.refused(parsed.reason);
    sendError(res, 400, parsed.code, parsed.message);
    return undefined;
  }
  return parsed;
}
