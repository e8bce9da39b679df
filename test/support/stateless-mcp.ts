/**
 * A stateless MCP server for tests: each HTTP request gets the test's own SDK `McpServer` behind a
 * fresh Streamable HTTP transport without sessions, and both are closed when the response closes
 * (the SDK's per-request pattern). A request the SDK cannot take is answered by destroying the socket.
 *
 *   const http = createServer((req, res) => answerStatelessly(myServer(), req, res, { enableJsonResponse: true }));
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';

export function answerStatelessly(
  server: McpServer,
  req: IncomingMessage,
  res: ServerResponse,
  options: { enableJsonResponse?: boolean | undefined } = {},
): void {
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: options.enableJsonResponse });
  res.on('close', () => {
    void transport.close();
    void server.close();
  });
  server
    .connect(transport)
    .then(() => transport.handleRequest(req, res))
    .catch(() => res.destroy());
}
