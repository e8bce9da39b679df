/**
 * RFC 9728 OAuth 2.0 Protected Resource Metadata for each MCP server.
 *
 * MCP clients start here after a 401: the document names the authorization server (the gateway itself)
 * and the scopes to ask for. Documents are built once at start-up and served as pre-serialised bytes.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServerConfig } from '../config/schema.ts';
import { hostKey, PRM_WELL_KNOWN, resourceFor } from '../core/resource-uri.ts';

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
 * (docs/clients.md), so it never appears here.
 */
export function advertisedScopes(server: Pick<ServerConfig, 'scopes'>): string[] {
  return server.scopes.filter((scope) => scope !== 'offline_access');
}

export function buildProtectedResourceMetadata(issuer: string, server: ServerConfig): ProtectedResourceMetadata {
  return {
    resource: resourceFor(issuer, server),
    // docs/clients.md: authorization_servers[0] must equal the issuer exactly.
    authorization_servers: [issuer],
    scopes_supported: advertisedScopes(server),
    // MCP forbids tokens in the query string, and form bodies are not used by MCP (RFC 9728 §2).
    bearer_methods_supported: ['header'],
    resource_name: server.name,
  };
}

export interface PreparedDocument {
  body: Buffer;
  headers: Record<string, string | number>;
}

/** A metadata document serialised once, with the headers every answer carries. */
export function prepareMetadataDocument(metadata: ProtectedResourceMetadata): PreparedDocument {
  const body = Buffer.from(JSON.stringify(metadata));
  return { body, headers: { 'content-type': 'application/json', 'content-length': body.byteLength, 'cache-control': 'public, max-age=300', ...PUBLIC_CORS } };
}

/** Answers GET/HEAD (the document), OPTIONS (CORS preflight) or 405; 404 when there is no document. */
export function serveMetadataDocument(req: IncomingMessage, res: ServerResponse, document: PreparedDocument | undefined): void {
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

/**
 * Serves each server's document at the well-known segment inserted into its resource URI (RFC 9728
 * §3.1): `/.well-known/oauth-protected-resource<path>` on the host of that URI. Documents of resources
 * on the gateway's own host are served whatever the request's Host (as before hosts existed); those of
 * host-routed servers (or a `resource` on another host) only when the request's Host is that host.
 * The bare well-known path on a host describes the first configured server on that host, for clients
 * that probe the root.
 */
export class ProtectedResourceMetadataEndpoints {
  /** Documents on the gateway's own host, by path. */
  readonly #documents = new Map<string, PreparedDocument>();
  /** Documents on other hosts: host key, then path. */
  readonly #byHost = new Map<string, Map<string, PreparedDocument>>();
  readonly #scheme: string;

  constructor(issuer: string, servers: readonly ServerConfig[]) {
    const issuerUrl = new URL(issuer);
    this.#scheme = issuerUrl.protocol;
    for (const server of servers) {
      const metadata = buildProtectedResourceMetadata(issuer, server);
      const url = new URL(metadata.resource);
      const documents = url.host === issuerUrl.host ? this.#documents : this.#hostDocuments(url.host);
      const document = prepareMetadataDocument(metadata);
      const path = url.pathname === '/' ? '' : url.pathname;
      if (!documents.has(PRM_WELL_KNOWN + path)) documents.set(PRM_WELL_KNOWN + path, document);
      if (!documents.has(PRM_WELL_KNOWN)) documents.set(PRM_WELL_KNOWN, document);
    }
  }

  #hostDocuments(host: string): Map<string, PreparedDocument> {
    let documents = this.#byHost.get(host);
    if (!documents) {
      documents = new Map();
      this.#byHost.set(host, documents);
    }
    return documents;
  }

  /**
   * The document `path` names for a request with this `Host`, or undefined (the caller has already
   * split off the query). A host-specific document wins over one on the gateway's own host.
   */
  find(path: string, host: string | undefined): PreparedDocument | undefined {
    if (this.#byHost.size > 0 && host !== undefined) {
      const key = this.#byHost.has(host) ? host : hostKey(host, this.#scheme);
      const document = key === undefined ? undefined : this.#byHost.get(key)?.get(path);
      if (document) return document;
    }
    return this.#documents.get(path);
  }

  /** True when `path` names one of the documents for this Host. */
  matches(path: string, host?: string): boolean {
    return this.find(path, host) !== undefined;
  }

  /** Answers GET/HEAD/OPTIONS for a path for which `matches` returned true. */
  serve(req: IncomingMessage, res: ServerResponse, path: string): void {
    serveMetadataDocument(req, res, this.find(path, req.headers.host));
  }
}

/**
 * The document is public and the same for everyone, so any origin may read it: MCP Inspector and other
 * browser clients fetch it with `fetch()` from their own origin.
 */
const PUBLIC_CORS = { 'access-control-allow-origin': '*' } as const;
