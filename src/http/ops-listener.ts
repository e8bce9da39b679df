/**
 * The operations listener (`metrics.listen`, loopback by default): `/metrics`, `/healthz` and
 * `/readyz` apart from the public listener, for the scraper and the orchestrator's probes. It stays
 * open during the shutdown drain, so probes see `/readyz` turn 503 while the public listener has
 * stopped accepting (docs/operations.md).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sendJson } from './errors.ts';
import { handleLiveness } from './health.ts';

export interface OpsListenerOptions {
  host: string;
  port: number;
  metrics: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  readiness: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  /** Something went wrong answering; logged by the caller. */
  onError: (error: unknown) => void;
}

export interface OpsListener {
  url: string;
  close(): Promise<void>;
}

export async function startOpsListener(options: OpsListenerOptions): Promise<OpsListener> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const read = req.method === 'GET' || req.method === 'HEAD';
    if (!read) {
      sendJson(res, 405, { error: 'invalid_request', error_description: 'method not allowed' }, { allow: 'GET, HEAD' });
      return;
    }
    const answer =
      path === '/metrics'
        ? options.metrics(req, res)
        : path === '/readyz'
          ? options.readiness(req, res)
          : path === '/healthz'
            ? handleLiveness(req, res)
            : notFound(res);
    answer?.catch((error: unknown) => {
      options.onError(error);
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error' });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  return { url: `http://${host}:${bound.port}`, close: () => closeServer(server) };
}

function notFound(res: ServerResponse): undefined {
  sendJson(res, 404, { error: 'not_found' });
  return undefined;
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
