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
import {
  buildProtectedResourceMetadata,
  type PreparedDocument,
  prepareMetadataDocument,
  serveMetadataDocument,
} from '../resource-server/protected-resource-metadata.ts';

export class ForwardAuthMetadata {
  readonly #documents = new Map<string, PreparedDocument>();

  constructor(issuer: string, servers: readonly ServerConfig[], pathFor: (serverName: string) => string) {
    for (const server of servers) {
      this.#documents.set(pathFor(server.name), prepareMetadataDocument(buildProtectedResourceMetadata(issuer, server)));
    }
  }

  /** True when `path` (query already split off) names a forward-auth server's document. */
  matches(path: string): boolean {
    return this.#documents.has(path);
  }

  /** Answers GET/HEAD/OPTIONS for a path for which `matches` returned true. */
  serve(req: IncomingMessage, res: ServerResponse, path: string): void {
    serveMetadataDocument(req, res, this.#documents.get(path));
  }
}
