/**
 * The cheapest possible "MCP server": answers every POST with one fixed JSON-RPC result. Behind the
 * gateway it shows the gateway's own cost. Usage: node bench/trivial-upstream.ts --port 3002 [--tools 50]
 */
import { createServer } from 'node:http';

const port = Number(process.argv[process.argv.indexOf('--port') + 1] ?? 0);
// `--tools N`: the fixed answer is a tools/list result with N tools (bench/tool-policy.ts filters it).
const toolsAt = process.argv.indexOf('--tools');
const tools = toolsAt === -1 ? 0 : Number(process.argv[toolsAt + 1]);
const result =
  tools > 0
    ? {
        tools: Array.from({ length: tools }, (_, i) => ({
          name: i % 2 === 0 ? `read_${i}` : `write_${i}`,
          description: `Tool ${i}`,
          inputSchema: { type: 'object' },
        })),
      }
    : { content: [{ type: 'text', text: 'ok' }] };
const payload = JSON.stringify({ jsonrpc: '2.0', id: 2, result });
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
    res.end(payload);
  });
});
server.keepAliveTimeout = 65_000;
server.listen(port, '127.0.0.1');
process.once('SIGTERM', () => server.close(() => process.exit(0)));
