/**
 * A reverse proxy with no auth and no header policy: node:http in front, one undici pool behind. The
 * benchmark runs it beside the gateway to show what this HTTP stack itself costs, so the gateway's own
 * share can be read off.
 *
 * `--mode buffered` (the default) handles bodies exactly as the gateway does on its hot path: a small
 * request body is read whole before it is sent upstream, and a finite (non-SSE) answer is held until
 * complete and sent with its length; SSE answers stream. This is the floor of the stack: the gateway
 * cannot cost less than it. `--mode streamed` passes both bodies through chunk by chunk.
 *
 * End-to-end headers pass both ways (so an MCP session id reaches the client), hop-by-hop ones do not.
 * Usage: node bench/bare-proxy.ts --port 3003 --upstream http://127.0.0.1:3002/mcp [--mode streamed]
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { Pool } from 'undici';

const arg = (name: string): string | undefined => {
  const index = process.argv.indexOf(`--${name}`);
  return index === -1 ? undefined : process.argv[index + 1];
};
const upstream = new URL(arg('upstream') ?? '');
const buffered = (arg('mode') ?? 'buffered') === 'buffered';
const pool = new Pool(upstream.origin, { connections: 128, keepAliveTimeout: 4_000 });
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host', 'expect']);

function requestHeaders(headers: IncomingHttpHeaders, dropLength: boolean): string[] {
  const out: string[] = [];
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || (dropLength && name === 'content-length')) continue;
    const value = headers[name];
    if (typeof value === 'string') out.push(name, value);
    else if (value !== undefined) for (const item of value) out.push(name, item);
  }
  return out;
}

function responseHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (!HOP_BY_HOP.has(name) && value !== undefined) out[name] = value;
  }
  return out;
}

const server = createServer((req, res) => {
  const send = (body: Buffer | typeof req | null, dropLength: boolean): void => {
    let held: Buffer[] | undefined;
    let heldBytes = 0;
    let status = 0;
    let out: Record<string, string | string[]> = {};
    pool.dispatch(
      { method: req.method as 'POST', path: upstream.pathname, headers: requestHeaders(req.headers, dropLength), body, bodyTimeout: 0 },
      {
        onRequestStart() {},
        onResponseStart(_controller, statusCode, headers) {
          if (statusCode < 200) return;
          status = statusCode;
          out = responseHeaders(headers);
          // As the gateway: finite answers are held until complete, event streams pass as they come.
          if (buffered && headers['content-length'] !== undefined) held = [];
          else {
            res.writeHead(statusCode, out);
            res.flushHeaders();
          }
        },
        onResponseData(_controller, chunk) {
          if (held !== undefined) {
            held.push(chunk);
            heldBytes += chunk.byteLength;
          } else res.write(chunk);
        },
        onResponseEnd() {
          if (held === undefined) {
            res.end();
            return;
          }
          const whole = held.length === 1 ? held[0]! : Buffer.concat(held, heldBytes);
          out['content-length'] = String(whole.byteLength);
          res.writeHead(status, out);
          res.end(whole);
        },
        onResponseError() {
          if (!res.headersSent) res.writeHead(502);
          res.end();
        },
      },
    );
  };
  const length = Number(req.headers['content-length'] ?? 0);
  if (!buffered || req.method !== 'POST' || length === 0) {
    send(length > 0 || req.headers['transfer-encoding'] !== undefined ? req : null, req.headers['transfer-encoding'] !== undefined);
    return;
  }
  // As the gateway: a small request body is read whole before anything goes upstream.
  const chunks: Buffer[] = [];
  let received = 0;
  req.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    received += chunk.byteLength;
  });
  req.on('end', () => send(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received), false));
});
server.keepAliveTimeout = 65_000;
server.listen(Number(arg('port')), '127.0.0.1');
process.once('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
