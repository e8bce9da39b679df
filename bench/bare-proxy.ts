/**
 * A reverse proxy with no auth and no header policy: node:http in front, one undici pool behind,
 * bytes passed straight through. The benchmark runs it beside the gateway to show what this HTTP stack
 * itself costs, so the gateway's own share can be read off. Usage:
 *   node bench/bare-proxy.ts --port 3003 --upstream http://127.0.0.1:3002/mcp
 */
import { createServer } from 'node:http';
import { Pool } from 'undici';

const arg = (name: string) => process.argv[process.argv.indexOf(`--${name}`) + 1] ?? '';
const upstream = new URL(arg('upstream'));
const pool = new Pool(upstream.origin, { connections: 128 });

const server = createServer((req, res) => {
  pool.dispatch(
    {
      method: req.method as 'POST',
      path: upstream.pathname,
      headers: { 'content-type': req.headers['content-type'] ?? 'application/json', accept: req.headers.accept ?? '*/*' },
      body: req,
    },
    {
      onRequestStart() {},
      onResponseStart(_controller, status, headers) {
        res.writeHead(status, { 'content-type': String(headers['content-type'] ?? 'application/json') });
      },
      onResponseData(_controller, chunk) {
        res.write(chunk);
      },
      onResponseEnd() {
        res.end();
      },
      onResponseError() {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      },
    },
  );
});
server.keepAliveTimeout = 65_000;
server.listen(Number(arg('port')), '127.0.0.1');
process.once('SIGTERM', () => server.close(() => process.exit(0)));
