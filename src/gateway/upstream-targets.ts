/**
 * Starts what the configured servers need before traffic can flow, and says where each server's
 * traffic goes: the URL to proxy to, plus any per-user headers the target needs (the stdio bridge
 * reads the user from them).
 *
 * - `url`: the MCP server itself.
 * - `builtin: demo`: the demo server shipped in src/demo, started on a loopback port.
 * - `stdio`: the stdio bridge (src/stdio), started on a loopback port.
 * - `forwardAuth`: no target; the reverse proxy in front sends the traffic itself.
 */
import type { ServerConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { UserRecord } from '../storage/records.ts';
import type { IdpTokenSource } from '../upstream/idp-tokens.ts';
import type { StdioServer } from '../stdio/index.ts';

export interface UpstreamTarget {
  url: string;
  /** Upstream older HTTP+SSE transport (2024-11-05): `url` is the SSE endpoint. */
  transport: 'streamable-http' | 'sse';
  /** Extra request headers for this user's requests (never from the client; the client's are dropped). */
  headersFor?: (user: UserRecord) => Record<string, string>;
  /** Lowercased names of the headers `headersFor` sets: the gateway strips client-sent copies of them. */
  headerNames?: readonly string[];
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
      // Loaded only when used, like the demo server. The bridge listens on loopback and refuses any
      // request without its per-boot secret, which only `headersFor` hands out.
      const { startStdioServer } = await import('../stdio/index.ts');
      const stdio = await startStdioServer(server, upstream.stdio, deps);
      closers.push(stdio.close);
      targets.set(server.name, {
        url: stdio.url,
        transport: 'streamable-http',
        headersFor: (user) => stdio.headersFor(user.id),
        headerNames: stdio.headerNames,
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
