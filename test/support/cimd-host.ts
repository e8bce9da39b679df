/**
 * An https loopback server (test CA) hosting Client ID Metadata Documents, standing in for
 * `https://claude.ai/oauth/...` or `https://vscode.dev/oauth/client-metadata.json`. Each path can
 * serve a document (its `client_id` filled in with the document's own URL unless given), or any
 * status, headers, body, redirect or delay, changed at any time, so tests can check the gateway's
 * fetch rules: only 200, no redirects, size cap, timeout, cache headers, `client_id` equal to the URL.
 *
 * The gateway must be configured with `clientIdMetadataDocuments.allowPrivateAddresses: true` and
 * `extraCaCertificatesFile: ca.caFile` to fetch from it.
 *
 * @example
 * const host = await startCimdHost();
 * const clientId = host.document('/oauth/client.json', {
 *   client_name: 'CIMD test client', redirect_uris: ['http://127.0.0.1:5555/callback'],
 * });
 * host.respond('/oauth/client.json', { status: 302, headers: { location: 'https://elsewhere.example/' } });
 * assert.equal(host.requestsFor('/oauth/client.json').length, 1);
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import { closeServer, listen } from './ports.ts';
import type { TestCa } from './tls.ts';
import { createTestCa } from './tls.ts';

export interface CimdResponse {
  status?: number;
  headers?: Record<string, string>;
  /** A string is sent as is; anything else as JSON. */
  body?: unknown;
  /** Wait this long before answering (timeout tests). */
  delayMs?: number;
}

export interface CimdRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  at: number;
}

export interface CimdHost {
  /** `https://localhost:<port>` (localhost: the CIMD URL must be a name, and the leaf cert covers it). */
  readonly origin: string;
  readonly port: number;
  /** Requests received, oldest first. */
  readonly requests: CimdRequest[];
  /**
   * Serves a metadata document at `path` with 200 and `cache-control: max-age=300` (override with
   * `headers`), filling `client_id` with the URL when absent. Returns the URL (the client_id).
   */
  document(path: string, metadata: Record<string, unknown>, headers?: Record<string, string>): string;
  /** Serves an arbitrary response at `path` (status, headers, body, delay). */
  respond(path: string, response: CimdResponse): string;
  /** The URL of `path` on this host. */
  url(path: string): string;
  requestsFor(path: string): CimdRequest[];
  close(): Promise<void>;
}

export async function startCimdHost(options: { tls?: TestCa; host?: 'localhost' | '127.0.0.1' } = {}): Promise<CimdHost> {
  const certificates = options.tls ?? (await createTestCa());
  const responses = new Map<string, CimdResponse>();
  const requests: CimdRequest[] = [];
  const pending = new Set<NodeJS.Timeout>();

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'https://placeholder').pathname;
    requests.push({ method: req.method ?? 'GET', path, headers: req.headers, at: Date.now() });
    const response = responses.get(path);
    if (!response) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const send = () => {
      const body = response.body === undefined ? '' : typeof response.body === 'string' ? response.body : JSON.stringify(response.body);
      const headers: Record<string, string> = {
        ...(typeof response.body === 'string' || response.body === undefined ? {} : { 'content-type': 'application/json' }),
        ...response.headers,
      };
      res.writeHead(response.status ?? 200, headers);
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (response.delayMs) {
      const timer = setTimeout(() => {
        pending.delete(timer);
        if (!res.destroyed) send();
      }, response.delayMs);
      pending.add(timer);
    } else {
      send();
    }
  };

  const server = createServer({ cert: certificates.certPem, key: certificates.keyPem }, handle);
  const hostname = options.host ?? 'localhost';
  const port = await listen(server, hostname === 'localhost' ? '127.0.0.1' : hostname);
  const origin = `https://${hostname}:${port}`;
  const url = (path: string) => new URL(path, origin).href;

  return {
    origin,
    port,
    requests,
    url,
    document(path, metadata, headers = {}) {
      const clientId = url(path);
      responses.set(new URL(clientId).pathname, {
        status: 200,
        headers: { 'cache-control': 'max-age=300', ...headers },
        body: { client_id: clientId, ...metadata },
      });
      return clientId;
    },
    respond(path, response) {
      responses.set(new URL(url(path)).pathname, response);
      return url(path);
    },
    requestsFor(path) {
      const wanted = new URL(url(path)).pathname;
      return requests.filter((request) => request.path === wanted);
    },
    async close() {
      for (const timer of pending) clearTimeout(timer);
      await closeServer(server);
    },
  };
}
