/**
 * The route table against what it must agree with: the routes the configured oidc-provider really
 * registers (read from the provider as it is built, not copied here), the configuration schema that
 * refuses server paths the gateway needs, and the forward-auth metadata URLs the challenges name.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { exportJWK, generateKeyPair } from 'jose';
import { createProvider, type ProtectedResource } from '../../../src/authorization/provider.ts';
import { configSchema } from '../../../src/config/schema.ts';
import { forwardAuthMetadataPath } from '../../../src/forward-auth/index.ts';
import { GATEWAY_ROUTES, matchRoute, RESERVED_PATHS, serverPathConflict } from '../../../src/http/routes.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { MemoryStorage } from '../../../src/storage/memory.ts';
import { SecretBox } from '../../../src/storage/secret-box.ts';

const ISSUER = 'https://gw.example.com';

interface RegisteredRoute {
  method: string;
  path: string;
}

type RouterMethod = (this: unknown, name: string, path: string, ...middleware: unknown[]) => unknown;

/**
 * Every (method, path) oidc-provider registers while the gateway's provider is built, with every
 * feature the configuration can switch on switched on. oidc-provider keeps its router private, so its
 * registration methods are observed for the duration of the build; the provider itself is untouched.
 */
async function providerRoutes(): Promise<RegisteredRoute[]> {
  const routerModule = new URL('./helpers/router.js', import.meta.resolve('oidc-provider'));
  const { default: Router } = (await import(routerModule.href)) as { default: { prototype: Record<string, RouterMethod> } };
  const config = configSchema.parse({ publicUrl: ISSUER, registration: { enabled: true }, clientIdMetadataDocuments: { enabled: true } });
  const pair = await generateKeyPair('ES256', { extractable: true });
  const signingKey = { ...(await exportJWK(pair.privateKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  const resources: ProtectedResource[] = [{ name: 'demo', resource: `${ISSUER}/mcp`, scopes: [] }];

  const registered: RegisteredRoute[] = [];
  const originals = new Map<string, RouterMethod>();
  for (const method of ['get', 'post', 'put', 'delete', 'options']) {
    const original = Router.prototype[method] as RouterMethod;
    originals.set(method, original);
    Router.prototype[method] = function (this: unknown, name, path, ...middleware) {
      registered.push({ method: method.toUpperCase(), path });
      return original.call(this, name, path, ...middleware);
    };
  }
  try {
    createProvider({
      issuer: ISSUER,
      resources,
      canonicalizeResource: (value) => value,
      storage: new MemoryStorage(),
      secretBox: new SecretBox([randomBytes(32)]),
      signingKeys: [signingKey],
      cookieKeys: ['a-cookie-key-for-this-test-only'],
      tokens: config.tokens,
      registration: config.registration,
      cimd: { ...config.clientIdMetadataDocuments, fetch: () => Promise.reject(new Error('no fetch in this test')) },
      renderError: () => undefined,
      logger: createLogger('silent'),
    });
  } finally {
    for (const [method, original] of originals) Router.prototype[method] = original;
  }
  return registered;
}

/** A concrete request path for a table pattern. */
function examplePath(pattern: string): string {
  let path = pattern.replace(/:[A-Za-z]+/g, 'x1');
  if (path.startsWith('*')) path = `/mcp${path.slice(1)}`;
  if (path.endsWith('/*')) path = `${path.slice(0, -2)}/x1`;
  return path;
}

function refusesServerPath(path: string): boolean {
  const result = configSchema.safeParse({ publicUrl: ISSUER, servers: [{ name: 'a', path, upstream: { url: 'http://127.0.0.1:1/mcp' } }] });
  return !result.success && result.error.issues.some((issue) => issue.path.join('.') === 'servers.0.path');
}

describe('route table', () => {
  it('holds every route the configured oidc-provider serves, with its methods', async () => {
    const registered = await providerRoutes();
    assert.ok(
      registered.some((route) => route.path === '/token'),
      "the provider's routes were observed (oidc-provider internals moved?)",
    );
    for (const { method, path } of registered) {
      const match = matchRoute(examplePath(path));
      assert.ok(match, `oidc-provider serves ${method} ${path}, which the route table does not know`);
      assert.equal(match.route.room, 'authorization', `${path} is answered by oidc-provider, in the authorization room`);
      assert.ok(match.route.methods === 'any' || match.route.methods.includes(method), `${method} ${path} is missing from the table's methods`);
    }
  });

  it('every table path matches its own entry', () => {
    for (const route of GATEWAY_ROUTES) {
      const match = matchRoute(examplePath(route.path));
      assert.ok(match, route.path);
      // `/forward-auth/*` examples are not shadowed by another entry; aliases resolve to the alias room.
      assert.equal(match.route.handler, route.handler, `${route.path} resolved to ${match.route.path}`);
    }
  });

  it('refuses a server path equal to, below or above any table path', () => {
    for (const route of GATEWAY_ROUTES) {
      const path = examplePath(route.path);
      assert.ok(refusesServerPath(path), `a server at ${path} would collide with ${route.path}`);
      assert.ok(refusesServerPath(`${path}/deeper`), `a server at ${path}/deeper would sit below ${route.path}`);
      if (!route.path.startsWith('*')) assert.ok(refusesServerPath(`/${path.split('/')[1]}`), `a server above ${route.path} would shadow it`);
    }
    assert.equal(refusesServerPath('/mcp'), false, 'a free path is accepted');
    assert.equal(refusesServerPath('/tokens'), false, 'a reserved word as a prefix of a segment is not a collision');
  });

  it('reserves only what the table serves', () => {
    assert.deepEqual([...RESERVED_PATHS].sort(), [
      '/.well-known',
      '/authorize',
      '/callback',
      '/forward-auth',
      '/healthz',
      '/interaction',
      '/introspect',
      '/jwks',
      '/metrics',
      '/readyz',
      '/register',
      '/revoke',
      '/session',
      '/sign-in',
      '/token',
    ]);
    assert.equal(serverPathConflict('/oidc'), undefined, 'nothing is served under /oidc');
  });

  it("names a forward-auth server's metadata URL at the table's forward-auth document route", () => {
    const match = matchRoute(forwardAuthMetadataPath('github'));
    assert.equal(match?.route.handler, 'forwardAuthMetadata');
    assert.equal(match?.params.server, 'github');
  });

  it('hands over pattern parts and respects narrower parameter shapes', () => {
    assert.deepEqual(matchRoute('/forward-auth/github/mcp/x')?.params, { rest: 'github/mcp/x' });
    assert.deepEqual(matchRoute('/mcp/a/.well-known/openid-configuration')?.params, { base: '/mcp/a' });
    assert.equal(matchRoute('/interaction/abc_-1')?.route.handler, 'consent');
    assert.equal(matchRoute('/interaction/a.b'), undefined, 'not an oidc-provider uid');
    assert.equal(matchRoute('/interaction/abc/decision')?.route.handler, 'consentDecision');
    assert.equal(matchRoute('/interaction/abc/other'), undefined);
    assert.equal(matchRoute('/tokens'), undefined);
    // Table order decides between overlapping patterns, whatever the path's first segment.
    assert.equal(matchRoute('/.well-known/oauth-protected-resource/mcp/.well-known/openid-configuration')?.route.handler, 'authorizationServerMetadata');
    assert.equal(matchRoute('/.well-known/oauth-protected-resource/forward-auth/github/x')?.route.handler, 'protectedResourceMetadata');
  });
});
