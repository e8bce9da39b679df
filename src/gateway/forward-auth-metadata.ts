/**
 * The Protected Resource Metadata (RFC 9728) of forward-auth servers, served on the gateway's own
 * origin at `/.well-known/oauth-protected-resource/forward-auth/<server name>`.
 *
 * A forward-auth server's resource URI is on the operator's proxy (`servers[].resource`), so the
 * path-inserted document URL (RFC 9728 §3.1) is on that proxy too, and exists there only if the proxy
 * routes it to the gateway. The 401 challenge instead names this gateway-hosted copy, which every client
 * can fetch with no proxy route at all: RFC 9728 §3.3 requires only that a document found through
 * `resource_metadata` carries the URL the client called as its `resource`, which it does (the same
 * document the gateway builds for every server, metadata.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServerConfig } from '../config/schema.ts';
import { buildProtectedResourceMetadata } from './metadata.ts';

/** Public and identical for everyone: any origin may read it (browser MCP clients fetch it cross-origin). */
const PUBLIC_CORS = { 'access-control-allow-origin': '*' } as const;

export class ForwardAuthMetadata {
  readonly #documents = new Map<string, { body: Buffer; headers: Record<string, string | number> }>();

  constructor(issuer: string, servers: readonly ServerConfig[], pathFor: (serverName: string) => string) {
    for (const server of servers) {
      const body = Buffer.from(JSON.stringify(buildProtectedResourceMetadata(issuer, server)));
      this.#documents.set(pathFor(server.name), {
        body,
        headers: { 'content-type': 'application/json', 'content-length': body.byteLength, 'cache-control': 'public, max-age=300', ...PUBLIC_CORS },
      });
    }
  }

  /** True when `path` (query already split off) names a forward-auth server's document. */
  matches(path: string): boolean {
    return this.#documents.has(path);
  }

  /** Answers GET/HEAD/OPTIONS for a path for which `matches` returned true. */
  serve(req: IncomingMessage, res: ServerResponse, path: string): void {
    const document = this.#documents.get(path);
    if (document === undefined) {
      res.writeHead(404, { 'content-type': 'application/json', 'cache-control': 'no-store', ...PUBLIC_CORS });
      res.end('{"error":"not_found"}');
      return;
    }
    if (req.method === 'OPTIONS') {
      res.writeHead(204, {
        ...PUBLIC_CORS,
        'access-control-allow-methods': 'GET, HEAD, OPTIONS',
        'access-control-allow-headers': req.headers['access-control-request-headers'] ?? '*',
        'access-control-max-age': '86400',
      });
      res.end();
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD, OPTIONS', 'content-type': 'application/json', 'cache-control': 'no-store', ...PUBLIC_CORS });
      res.end('{"error":"method_not_allowed"}');
      return;
    }
    res.writeHead(200, document.headers);
    res.end(req.method === 'HEAD' ? undefined : document.body);
  }
}
