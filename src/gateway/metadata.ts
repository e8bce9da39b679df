/**
 * RFC 9728 OAuth 2.0 Protected Resource Metadata for each MCP server.
 *
 * MCP clients start here after a 401: the document names the authorization server (the gateway itself)
 * and the scopes to ask for. Documents are built once at start-up and served as pre-serialised bytes.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServerConfig } from '../config/schema.ts';
import { PRM_WELL_KNOWN, resourceFor } from './resource.ts';

/** RFC 9728 §2 fields the gateway publishes. */
export interface ProtectedResourceMetadata {
  resource: string;
  authorization_servers: string[];
  scopes_supported: string[];
  bearer_methods_supported: ['header'];
  resource_name: string;
}

/**
 * Scopes to advertise. `offline_access` is a request to the authorization server, not something the
 * resource grants; clients that see it in PRM or a challenge ask for it and then trip on consent prompts
 * (CLIENTS.md §1), so it never appears here.
 */
export function advertisedScopes(server: Pick<ServerConfig, 'scopes'>): string[] {
  return server.scopes.filter((scope) => scope !== 'offline_access');
}

export function buildProtectedResourceMetadata(issuer: string, server: ServerConfig): ProtectedResourceMetadata {
  return {
    resource: resourceFor(issuer, server),
    // CLIENTS.md §1: authorization_servers[0] must equal the issuer exactly.
    authorization_servers: [issuer],
    scopes_supported: advertisedScopes(server),
    // MCP forbids tokens in the query string, and form bodies are not used by MCP (RFC 9728 §2).
    bearer_methods_supported: ['header'],
    resource_name: server.name,
  };
}

interface PreparedDocument {
  body: Buffer;
  headers: Record<string, string | number>;
}

/**
 * Serves the documents at `/.well-known/oauth-protected-resource<server.path>` (RFC 9728 §3.1, path
 * inserted) and at the bare well-known path for clients that probe the root, which describes the first
 * configured server.
 */
export class ProtectedResourceMetadataEndpoints {
  readonly #documents = new Map<string, PreparedDocument>();

  constructor(issuer: string, servers: readonly ServerConfig[]) {
    for (const [index, server] of servers.entries()) {
      const document = prepare(buildProtectedResourceMetadata(issuer, server));
      this.#documents.set(PRM_WELL_KNOWN + server.path, document);
      if (index === 0) this.#documents.set(PRM_WELL_KNOWN, document);
    }
  }

  /** True when `path` names one of the documents (the caller has already split off the query). */
  matches(path: string): boolean {
    return this.#documents.has(path);
  }

  /** Answers GET/HEAD/OPTIONS for a path for which `matches` returned true. */
  serve(req: IncomingMessage, res: ServerResponse, path: string): void {
    const document = this.#documents.get(path);
    if (!document) {
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

/**
 * The document is public and the same for everyone, so any origin may read it: MCP Inspector and other
 * browser clients fetch it with `fetch()` from their own origin.
 */
const PUBLIC_CORS = { 'access-control-allow-origin': '*' } as const;

function prepare(metadata: ProtectedResourceMetadata): PreparedDocument {
  const body = Buffer.from(JSON.stringify(metadata));
  return {
    body,
    headers: {
      'content-type': 'application/json',
      'content-length': body.byteLength,
      'cache-control': 'public, max-age=300',
      ...PUBLIC_CORS,
    },
  };
}
