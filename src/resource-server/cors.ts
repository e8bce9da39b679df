/**
 * CORS for the MCP routes, for browser-based MCP clients. The routes are not public: an allowed origin
 * is echoed (never `*`), and which origins are allowed is the Origin policy's decision (origin.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** The methods MCP Streamable HTTP uses (and the preflight). */
export const MCP_METHODS = 'GET, POST, DELETE, OPTIONS';
/** Request headers a browser MCP client sends (MCP Transports; `Mcp-Method`/`Mcp-Name` from 2026-07-28). */
const ALLOWED_REQUEST_HEADERS = 'authorization, content-type, accept, mcp-session-id, mcp-protocol-version, last-event-id, mcp-method, mcp-name';
/** Response headers browser clients must be able to read: the session id and the 401/403 challenge. */
const EXPOSED_HEADERS = 'mcp-session-id, mcp-protocol-version, www-authenticate';

export type CorsHeaders = Record<string, string> | undefined;

/** The CORS headers of every answer to a request with this (allowed) `Origin`; none without one. */
export function corsHeaders(origin: string | undefined): CorsHeaders {
  if (origin === undefined) return undefined;
  return { 'access-control-allow-origin': origin, 'access-control-expose-headers': EXPOSED_HEADERS, vary: 'origin' };
}

export function sendPreflight(req: IncomingMessage, res: ServerResponse, cors: CorsHeaders): void {
  res.writeHead(204, {
    ...cors,
    allow: MCP_METHODS,
    'access-control-allow-methods': MCP_METHODS,
    'access-control-allow-headers': req.headers['access-control-request-headers'] ?? ALLOWED_REQUEST_HEADERS,
    'access-control-max-age': '600',
    'cache-control': 'no-store',
  });
  res.end();
}
