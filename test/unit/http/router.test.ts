/**
 * The one dispatcher on a real `node:http` server: MCP routes first, then the table, with 404 and 405
 * answered the same way for every room. The handlers here stand in for the rooms and record what the
 * router handed them.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, request, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { createRouter, type RequestTarget, type RouteHandlers } from '../../../src/http/router.ts';
import { closeServer, listen } from '../../support/ports.ts';

let server: Server;
let base: string;
const seen: Array<{ handler: string; method?: string; target: RequestTarget }> = [];
const mcpSeen: Array<{ path: string; query: string }> = [];
const failures: unknown[] = [];

function recording(name: string): NonNullable<RouteHandlers[keyof RouteHandlers]> {
  return (req, res, target) => {
    seen.push({ handler: name, method: req.method, target });
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(name);
  };
}

before(async () => {
  const handlers: RouteHandlers = {
    health: recording('health'),
    consent: recording('consent'),
    forwardAuthCheck: recording('forwardAuthCheck'),
    authorizationServerMetadata: recording('authorizationServerMetadata'),
    // An unknown provider id: the handler has nothing at this path.
    localSignIn: (_req, _res, target) => (target.params.provider === 'local' ? undefined : false),
    oidcProvider: () => {
      throw new Error('thrown by a handler');
    },
    registration: () => Promise.reject(new Error('rejected by a handler')),
  };
  server = createServer(
    createRouter({
      // One MCP server at /mcp, on any host.
      mcp: (_req, res, path, query) => {
        if (path !== '/mcp' && !path.startsWith('/mcp/')) return false;
        mcpSeen.push({ path, query });
        res.writeHead(200);
        res.end('mcp');
        return true;
      },
      handlers,
      onError: (error, _req, res) => {
        failures.push(error);
        res.writeHead(500);
        res.end();
      },
    }),
  );
  base = `http://127.0.0.1:${await listen(server)}`;
});

after(() => closeServer(server));

async function json(response: Response): Promise<Record<string, unknown>> {
  return (await response.json()) as Record<string, unknown>;
}

describe('router', () => {
  it('gives MCP server paths to the MCP routes first, with the query split off', async () => {
    mcpSeen.length = 0;
    const response = await fetch(`${base}/mcp/sub?a=1&b=2`, { method: 'POST', body: '{}' });
    assert.equal(response.status, 200);
    assert.deepEqual(mcpSeen, [{ path: '/mcp/sub', query: 'a=1&b=2' }]);
  });

  it('keeps the path-appended metadata alias from the MCP server below which it sits', async () => {
    mcpSeen.length = 0;
    seen.length = 0;
    const response = await fetch(`${base}/mcp/.well-known/openid-configuration`);
    assert.equal(response.status, 200);
    assert.deepEqual(mcpSeen, []);
    assert.equal(seen[0]?.handler, 'authorizationServerMetadata');
    assert.deepEqual(seen[0]?.target.params, { base: '/mcp' });
  });

  it('hands table routes their parameters and the raw search', async () => {
    seen.length = 0;
    await (await fetch(`${base}/interaction/uid_1`)).text();
    await (await fetch(`${base}/forward-auth/github/mcp?x=1`, { method: 'PATCH' })).text();
    assert.deepEqual(
      seen.map((entry) => [entry.handler, entry.method, entry.target]),
      [
        ['consent', 'GET', { path: '/interaction/uid_1', search: '', params: { uid: 'uid_1' } }],
        ['forwardAuthCheck', 'PATCH', { path: '/forward-auth/github/mcp', search: '?x=1', params: { rest: 'github/mcp' } }],
      ],
    );
  });

  it('answers an unknown path with the JSON 404', async () => {
    const response = await fetch(`${base}/nothing-here`);
    assert.equal(response.status, 404);
    assert.equal(response.headers.get('cache-control'), 'no-store');
    assert.equal((await json(response)).error, 'not_found');
  });

  it("answers a wrong method on a known path with 405 and the table's Allow", async () => {
    const expected: Record<string, string> = {
      '/healthz': 'GET, HEAD',
      '/interaction/uid_1': 'GET',
      '/token': 'POST, OPTIONS',
      '/.well-known/oauth-authorization-server/mcp': 'GET, HEAD, OPTIONS',
    };
    for (const [path, allow] of Object.entries(expected)) {
      const response = await fetch(`${base}${path}`, { method: 'PUT' });
      assert.equal(response.status, 405, path);
      assert.equal(response.headers.get('allow'), allow, path);
      assert.equal((await json(response)).error, 'invalid_request');
    }
  });

  it('answers 404 for a withheld oidc-provider route, a room that is not mounted, or a handler that finds nothing', async () => {
    for (const path of ['/session/end/confirm', '/register/client-1', '/callback', '/sign-in/other']) {
      const method = path === '/session/end/confirm' ? 'POST' : 'GET';
      const response = await fetch(`${base}${path}`, { method });
      assert.equal(response.status, 404, path);
      assert.equal((await json(response)).error, 'not_found', path);
    }
  });

  it('matches an absolute-form request target by its path', async () => {
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = request(`${base}/healthz`, { path: `${base}/healthz` }, (res: IncomingMessage) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 200);
  });

  it('reports a handler that throws or rejects to onError', async () => {
    failures.length = 0;
    assert.equal((await fetch(`${base}/token`, { method: 'POST' })).status, 500);
    assert.equal((await fetch(`${base}/register`, { method: 'POST' })).status, 500);
    assert.deepEqual(
      failures.map((error) => (error as Error).message),
      ['thrown by a handler', 'rejected by a handler'],
    );
  });
});
