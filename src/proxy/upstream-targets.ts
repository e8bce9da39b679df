/**
 * Starts what the configured servers need before traffic can flow, and says where each server's
 * traffic goes: a URL to proxy to, or an in-process handler.
 *
 * - `url`: the MCP server itself.
 * - `builtin: demo`: the demo server shipped in src/demo, started on a loopback port.
 * - `stdio`: the stdio bridge (src/stdio), called in-process.
 * - `forwardAuth`: no target; the reverse proxy in front sends the traffic itself.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServerConfig } from '../config/schema.ts';
import type { Clock } from '../core/clock.ts';
import type { InProcessRequest } from '../core/message-screen.ts';
import type { IdpTokenSource } from '../idp/idp-tokens.ts';
import type { Logger } from '../observability/logger.ts';
import type { StdioServer } from '../stdio/index.ts';
import type { UserRecord } from '../storage/records.ts';

export interface UpstreamTarget {
  /** Where the gateway proxies to; empty for an in-process target. */
  url: string;
  /** Upstream older HTTP+SSE transport (2024-11-05): `url` is the SSE endpoint. */
  transport: 'streamable-http' | 'sse';
  /**
   * An in-process target (the stdio bridge): the gateway hands the authenticated request over directly
   * instead of proxying to `url`. Session, body-size and JSON-RPC handling are the target's own.
   */
  serve?: (req: IncomingMessage, res: ServerResponse, user: UserRecord, subPath: string, search: string, extras?: InProcessRequest) => void;
  /** The stdio server behind this target, when it is one (diagnostics and tests). */
  stdio?: StdioServer;
}

export interface UpstreamTargets {
  /** Undefined for forward-auth servers. */
  get(serverName: string): UpstreamTarget | undefined;
  close(): Promise<void>;
}

export interface UpstreamTargetDeps {
  logger: Logger;
  idpTokens: IdpTokenSource;
  /** Times stdio IdP-token recycling (the system clock by default). */
  clock?: Clock;
}

export async function startUpstreamTargets(servers: readonly ServerConfig[], deps: UpstreamTargetDeps): Promise<UpstreamTargets> {
  const targets = new Map<string, UpstreamTarget>();
  const closers: Array<() => Promise<void>> = [];
  for (const server of servers) {
    const upstream = server.upstream;
    if ('url' in upstream) {
      targets.set(server.name, { url: upstream.url, transport: upstream.transport });
    } else if ('builtin' in upstream) {
      // Loaded only when used: the demo server brings the MCP SDK's server side into memory.
      const { startDemoServer } = await import('../demo/server.ts');
      const demo = await startDemoServer({ host: '127.0.0.1', port: 0 });
      closers.push(demo.close);
      targets.set(server.name, { url: demo.url, transport: 'streamable-http' });
    } else if ('stdio' in upstream) {
      // Loaded only when used, like the demo server. Called in-process: no port, no second HTTP parse.
      const { startStdioServer } = await import('../stdio/index.ts');
      const stdio = await startStdioServer(server, upstream.stdio, deps);
      closers.push(stdio.close);
      targets.set(server.name, {
        url: '',
        transport: 'streamable-http',
        serve: (req, res, user, subPath, search, extras) => stdio.serve(req, res, user.id, subPath, search, extras),
        stdio,
      });
    }
  }
  return {
    get: (name) => targets.get(name),
    async close() {
      for (const close of closers.reverse()) await close();
    },
  };
}
