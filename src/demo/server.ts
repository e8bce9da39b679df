/**
 * A small MCP server shipped with the product, so that `npm start` has something to protect and the
 * tests have a real upstream. Built with the official SDK over Streamable HTTP with stateful sessions
 * (`Mcp-Session-Id`) and the GET SSE stream.
 *
 * Tools:
 * - `echo` returns its text;
 * - `whoami` returns the identity headers the gateway handed over and whether an `Authorization` or
 *   `Cookie` header arrived (it must not: MCP forbids token passthrough);
 * - `slow_count` counts with pauses, sending a progress notification and a log message per step over
 *   the request's SSE stream, which shows that events pass through the gateway unbuffered.
 *
 * Standalone: `npx node src/demo/server.ts --port 3001 [--host 127.0.0.1]`.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';

/** Where the MCP endpoint lives on the demo server. */
export const DEMO_MCP_PATH = '/mcp';

/** Sessions kept at most; the oldest is closed first, so a noisy client cannot exhaust memory. */
const MAX_SESSIONS = 1_000;

/**
 * Headers `whoami` reports: the gateway's documented identity header names (`x-user-*`) and the
 * conventions of other auth proxies, so the demo stays useful whatever names an operator configures.
 */
function isIdentityHeader(name: string): boolean {
  return name.startsWith('x-user-') || name.startsWith('x-forwarded-') || name.startsWith('x-auth-request-') || name === 'remote-user';
}

/** Builds one MCP server instance (one per session, as the SDK's stateful transport expects). */
export function createDemoMcpServer(): McpServer {
  const server = new McpServer(
    { name: 'mcp-oauth-gateway-demo', version: '0.1.0' },
    { capabilities: { logging: {} } },
  );

  server.registerTool(
    'echo',
    { description: 'Returns the text it was given.', inputSchema: { text: z.string() } },
    async ({ text }) => ({ content: [{ type: 'text', text }] }),
  );

  server.registerTool(
    'whoami',
    { description: 'Shows the identity the gateway handed over to this MCP server.' },
    async (extra) => {
      const headers = extra.requestInfo?.headers ?? {};
      const identity: Record<string, string> = {};
      for (const [name, value] of Object.entries(headers)) {
        if (value !== undefined && isIdentityHeader(name.toLowerCase())) identity[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
      }
      const report = {
        identity,
        authorizationHeaderPresent: headers.authorization !== undefined || headers.Authorization !== undefined,
        cookieHeaderPresent: headers.cookie !== undefined || headers.Cookie !== undefined,
      };
      return { content: [{ type: 'text', text: JSON.stringify(report) }], structuredContent: report };
    },
  );

  server.registerTool(
    'slow_count',
    {
      description: 'Counts to `count`, pausing `intervalMs` between steps and streaming a progress notification and a log message per step.',
      inputSchema: {
        count: z.number().int().min(1).max(50).default(5),
        intervalMs: z.number().int().min(0).max(5_000).default(200),
      },
    },
    async ({ count, intervalMs }, extra) => {
      const progressToken = extra._meta?.progressToken;
      for (let step = 1; step <= count; step++) {
        await sleep(intervalMs, undefined, { signal: extra.signal });
        if (progressToken !== undefined) {
          await extra.sendNotification({ method: 'notifications/progress', params: { progressToken, progress: step, total: count, message: `step ${step}` } });
        }
        await extra.sendNotification({ method: 'notifications/message', params: { level: 'info', logger: 'slow_count', data: `step ${step} of ${count}` } });
      }
      return { content: [{ type: 'text', text: `Counted to ${count}.` }] };
    },
  );

  return server;
}

export interface DemoServer {
  /** The MCP endpoint, e.g. `http://127.0.0.1:3001/mcp`. */
  url: string;
  close(): Promise<void>;
}

/** Starts the demo server; `port: 0` picks a free port. */
export async function startDemoServer(options: { host?: string; port?: number } = {}): Promise<DemoServer> {
  const host = options.host ?? '127.0.0.1';
  const sessions = new Map<string, StreamableHTTPServerTransport>();

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== DEMO_MCP_PATH) {
      sendError(res, 404, 'Not found');
      return;
    }
    const sessionId = req.headers['mcp-session-id'];
    if (typeof sessionId === 'string') {
      const transport = sessions.get(sessionId);
      // MCP Transports, "Session Management": an unknown session gets 404 so the client starts anew.
      if (!transport) sendError(res, 404, 'Session not found');
      else await transport.handleRequest(req, res);
      return;
    }
    if (req.method !== 'POST') {
      sendError(res, 400, 'Bad Request: Mcp-Session-Id header is required');
      return;
    }
    // A POST without a session must be `initialize`; the transport answers 400 to anything else.
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: randomUUID,
      onsessioninitialized: (id) => {
        if (sessions.size >= MAX_SESSIONS) {
          const oldest = sessions.values().next();
          if (!oldest.done) void oldest.value.close();
        }
        sessions.set(id, transport);
      },
      onsessionclosed: (id) => {
        sessions.delete(id);
      },
    });
    transport.onclose = () => {
      if (transport.sessionId) sessions.delete(transport.sessionId);
    };
    await createDemoMcpServer().connect(transport);
    await transport.handleRequest(req, res);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) sendError(res, 500, 'Internal error');
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${urlHost}:${address.port}${DEMO_MCP_PATH}`,
    async close() {
      const transports = [...sessions.values()];
      sessions.clear();
      await Promise.allSettled(transports.map((transport) => transport.close()));
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

function sendError(res: ServerResponse, status: number, message: string): void {
  const body = JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32000, message } });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: { port: { type: 'string', default: '3001' }, host: { type: 'string', default: '127.0.0.1' } },
  });
  const demo = await startDemoServer({ host: values.host, port: Number(values.port) });
  process.stdout.write(`demo MCP server listening on ${demo.url}\n`);
  const stop = (): void => {
    void demo.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
