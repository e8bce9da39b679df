/**
 * The MCP server routes as the hot path matches them: Host first, then the longest path prefix; and
 * the start-up refusal of a server whose traffic has nowhere to go. Servers come from the real
 * configuration schema; no request is sent (routing.test.ts sends them).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { configSchema } from '../../../src/config/schema.ts';
import { ErrorCode, hasErrorCode } from '../../../src/core/errors.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { UpstreamPools } from '../../../src/proxy/http-proxy.ts';
import { createResourceServer } from '../../../src/resource-server/index.ts';
import { buildMcpRoutes, createMcpRouteMatcher, escapesRoute } from '../../../src/resource-server/mcp-routes.ts';

const ISSUER = 'https://gw.example.com';
const UPSTREAM = { url: 'http://127.0.0.1:1/mcp' };
const pools = new UpstreamPools();
after(() => pools.close());

function serversOf(servers: unknown[]) {
  return configSchema.parse({ publicUrl: ISSUER, servers }).servers ?? [];
}

describe('MCP routes', () => {
  const routes = buildMcpRoutes(
    serversOf([
      { name: 'mcp', path: '/mcp', upstream: UPSTREAM },
      { name: 'admin', path: '/mcp/admin', upstream: UPSTREAM },
      { name: 'hosted', host: 'tools.example.com', path: '/mcp', upstream: UPSTREAM },
      { name: 'other', path: '/other', upstream: UPSTREAM },
      { name: 'proxied', path: '/proxied', upstream: { forwardAuth: true } },
    ]),
    { issuer: ISSUER, ownOrigin: ISSUER, upstreams: undefined, pools, logger: createLogger('silent') },
  );
  const routeFor = createMcpRouteMatcher(routes, 'https:');
  const nameOf = (host: string | undefined, path: string) => routeFor(host, path)?.server.name;

  it('takes the longest path prefix, on segment boundaries', () => {
    assert.equal(nameOf('gw.example.com', '/mcp'), 'mcp');
    assert.equal(nameOf('gw.example.com', '/mcp/admin/x'), 'admin');
    assert.equal(nameOf('gw.example.com', '/mcp/administrator'), 'mcp');
    assert.equal(nameOf('gw.example.com', '/mcpx'), undefined);
  });

  it("prefers the server of the request's Host, in any case and with the default port", () => {
    assert.equal(nameOf('tools.example.com', '/mcp'), 'hosted');
    assert.equal(nameOf('TOOLS.example.com:443', '/mcp'), 'hosted');
    assert.equal(nameOf('tools.example.com', '/mcp/admin'), 'hosted', "a host's own servers come first, even before a longer any-Host prefix");
    assert.equal(nameOf('tools.example.com', '/other'), 'other', 'a path no server of the host has goes to the any-Host servers');
    assert.equal(nameOf(undefined, '/mcp'), 'mcp');
  });

  it('never routes a forward-auth server: its traffic does not pass through the gateway', () => {
    assert.equal(nameOf('gw.example.com', '/proxied'), undefined);
  });

  it('refuses sub-paths that could leave the route upstream', () => {
    for (const subPath of ['/../x', '/a/%2e%2e/x', '/a%2Fb', '/a\\b', '/.']) assert.equal(escapesRoute(subPath), true, subPath);
    for (const subPath of ['/a/b', '/a..b', '/.well-known']) assert.equal(escapesRoute(subPath), false, subPath);
  });

  it('refuses at start-up a built-in or stdio server without its running target', () => {
    const servers = serversOf([{ name: 'demo', path: '/mcp', upstream: { builtin: 'demo' } }]);
    assert.throws(
      () => createResourceServer({ issuer: ISSUER, servers, publicKeys: () => [], findUser: async () => undefined, logger: createLogger('silent') }),
      (error: unknown) => hasErrorCode(error, ErrorCode.PROXY_UPSTREAM_UNDEFINED),
    );
  });
});
