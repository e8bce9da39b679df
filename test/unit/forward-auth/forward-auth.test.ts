/**
 * The forward-auth endpoint answering the check requests of Traefik ForwardAuth, Caddy `forward_auth`,
 * Envoy HTTP ext_authz and nginx `auth_request`, each in the header layout that proxy really sends.
 * The handler runs in a real `node:http` server; tokens are real ES256 JWTs (RFC 9068) signed with a
 * key the handler trusts, as the gateway's authorization server signs them. The nginx configuration
 * itself is exercised end to end in test/e2e/forward-auth.test.ts.
 */
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { CryptoKey, JWK } from 'jose';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { type ServerConfig, serverSchema } from '../../../src/config/schema.ts';
import { ErrorCode, hasErrorCode } from '../../../src/core/errors.ts';
import { createForwardAuth, forwardAuthMetadataPath } from '../../../src/forward-auth/index.ts';
import { createRouter } from '../../../src/http/router.ts';
import { IdpReauthenticationRequired, type IdpTokenSource } from '../../../src/idp/idp-tokens.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import type { UserRecord } from '../../../src/storage/records.ts';
import { closeServer, listen } from '../../support/ports.ts';

const ISSUER = 'https://gw.example.com';
const GITHUB = 'https://mcp.example.com/github';
const ADMIN = 'https://mcp.example.com/github/admin';
const APP = 'https://app.internal:8443/mcp';

let privateKey: CryptoKey;
let publicJwk: JWK;
let server: Server;
let base: string;
const logLines: Array<Record<string, unknown>> = [];

const users = new Map<string, UserRecord>([
  [
    'corp:alice',
    { id: 'corp:alice', provider: 'corp', subject: 'alice', email: 'alice@example.com', name: 'Alice Ä', groups: ['eng', 'a,b'], createdAt: 0, lastLoginAt: 0 },
  ],
  ['corp:bob', { id: 'corp:bob', provider: 'corp', subject: 'bob', groups: [], createdAt: 0, lastLoginAt: 0 }],
]);

/** The user's IdP token as the real source hands it out: alice has one, bob's IdP session has ended. */
const idpTokens: IdpTokenSource = {
  async accessTokenFor(userId) {
    if (userId === 'corp:alice') return { accessToken: 'idp-token-of-alice', expiresAt: Math.floor(Date.now() / 1000) + 3600 };
    throw new IdpReauthenticationRequired(userId, 'the IdP refused the refresh token');
  },
};

function servers(): ServerConfig[] {
  return [
    {
      name: 'github',
      path: '/github',
      resource: GITHUB,
      upstream: { forwardAuth: true },
      scopes: ['mcp:tools'],
      identityHeaders: { subject: 'X-User-Id', email: 'x-user-email', name: 'x-user-name', groups: 'x-user-groups' },
    },
    {
      name: 'github-admin',
      path: '/github-admin',
      resource: ADMIN,
      upstream: { forwardAuth: true },
      scopes: ['mcp:admin'],
      identityHeaders: { subject: 'x-user-id' },
    },
    {
      name: 'app',
      path: '/app',
      resource: APP,
      upstream: { forwardAuth: true },
      idpToken: { header: 'X-IdP-Token' },
      identityHeaders: { subject: 'x-user-id' },
    },
    { name: 'proxied', path: '/mcp', upstream: { url: 'http://127.0.0.1:9/mcp' } },
  ].map((server) => serverSchema.parse(server));
}

async function token(options: { aud?: string; scope?: string; sub?: string; expiresIn?: number } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ client_id: 'client-1', scope: options.scope ?? 'mcp:tools' })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'k1' })
    .setIssuer(ISSUER)
    .setAudience(options.aud ?? GITHUB)
    .setSubject(options.sub ?? 'corp:alice')
    .setIssuedAt(now - 10)
    .setJti(crypto.randomUUID())
    .setExpirationTime(now + (options.expiresIn ?? 300))
    .sign(privateKey);
}

interface CheckResponse {
  status: number;
  headers: { get(name: string): string | null };
  text(): Promise<string>;
}

/**
 * One check request, as a proxy sends it. node:http rather than fetch, because Envoy's checks carry the
 * original `Host`, which fetch does not let a caller set.
 */
function check(path: string, headers: Record<string, string>, method = 'GET'): Promise<CheckResponse> {
  return new Promise((resolve, reject) => {
    const req = request(base + path, { method, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: {
            get: (name) => {
              const value = res.headers[name.toLowerCase()];
              return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value;
            },
          },
          text: async () => body,
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

/** The headers Traefik's ForwardAuth middleware sends about a request to `uri` on `host`. */
function traefik(host: string, uri: string, method = 'POST'): Record<string, string> {
  return { 'x-forwarded-method': method, 'x-forwarded-proto': 'https', 'x-forwarded-host': host, 'x-forwarded-uri': uri, 'x-forwarded-for': '203.0.113.7' };
}

before(async () => {
  const pair = await generateKeyPair('ES256', { extractable: true });
  privateKey = pair.privateKey;
  publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logLines.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  const forwardAuth = createForwardAuth({
    issuer: ISSUER,
    servers: servers(),
    publicKeys: () => [publicJwk],
    findUser: async (sub) => users.get(sub),
    idpTokens,
    logger: createLogger('debug', sink),
  });
  // The gateway's own router with only this room mounted: every other route answers 404.
  server = createServer(createRouter({ handlers: forwardAuth.handlers, onError: (error) => assert.fail(error as Error) }));
  base = `http://127.0.0.1:${await listen(server)}`;
});

after(() => closeServer(server));

describe('forward-auth: allowed requests, per proxy', () => {
  it('Traefik ForwardAuth (X-Forwarded-Method/Proto/Host/Uri): 200, identity headers, no body', async () => {
    const response = await check('/forward-auth/github', { ...traefik('mcp.example.com', '/github/mcp?x=1'), authorization: `Bearer ${await token()}` });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-user-id'), 'corp:alice');
    assert.equal(response.headers.get('x-user-email'), 'alice@example.com');
    assert.equal(response.headers.get('x-user-name'), 'Alice %C3%84', 'non-ASCII is percent-encoded (identity.ts)');
    assert.equal(response.headers.get('x-user-groups'), 'eng,a%2Cb');
    assert.equal(response.headers.get('www-authenticate'), null);
    assert.equal(response.headers.get('cache-control'), 'no-store');
    assert.equal(await response.text(), '');
  });

  it('Caddy forward_auth at the unnamed endpoint: the server is found from X-Forwarded-Host/Uri', async () => {
    const response = await check('/forward-auth', {
      'x-forwarded-method': 'GET',
      'x-forwarded-uri': '/github/mcp',
      'x-forwarded-host': 'MCP.example.com',
      authorization: `Bearer ${await token()}`,
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-user-id'), 'corp:alice');
  });

  it('Envoy ext_authz (path_prefix + original path, original Host): 200', async () => {
    const response = await check('/forward-auth/github/github/mcp?session=1', { host: 'mcp.example.com', authorization: `Bearer ${await token()}` }, 'POST');
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-user-id'), 'corp:alice');
  });

  it('nginx auth_request with X-Original-URI and X-Forwarded-Host, a HEAD/GET subrequest', async () => {
    const response = await check('/forward-auth/github', {
      'x-original-uri': '/github',
      'x-forwarded-host': 'mcp.example.com:443',
      authorization: `Bearer ${await token()}`,
    });
    assert.equal(response.status, 200, 'the default port of the resource scheme is ignored');
  });

  it('ingress-nginx X-Original-URL', async () => {
    const response = await check('/forward-auth', { 'x-original-url': 'https://mcp.example.com/github/mcp', authorization: `Bearer ${await token()}` });
    assert.equal(response.status, 200);
  });

  it('the longest resource path wins on the same host', async () => {
    const admin = await token({ aud: ADMIN, scope: 'mcp:admin' });
    assert.equal((await check('/forward-auth', { ...traefik('mcp.example.com', '/github/admin/mcp'), authorization: `Bearer ${admin}` })).status, 200);
    const github = await token();
    const refused = await check('/forward-auth', { ...traefik('mcp.example.com', '/github/admin/mcp'), authorization: `Bearer ${github}` });
    assert.equal(refused.status, 401, 'a /github token does not open /github/admin');
    assert.match(refused.headers.get('www-authenticate') ?? '', /forward-auth\/github-admin"/);
  });

  it('hands over the IdP token in the configured header', async () => {
    const response = await check('/forward-auth/app', {
      ...traefik('app.internal:8443', '/mcp'),
      authorization: `Bearer ${await token({ aud: APP, scope: '' })}`,
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-idp-token'), 'idp-token-of-alice');
    assert.equal(response.headers.get('x-user-id'), 'corp:alice');
  });

  it('lets a CORS preflight through without identity', async () => {
    const response = await check('/forward-auth/github', {
      ...traefik('mcp.example.com', '/github/mcp', 'OPTIONS'),
      origin: 'https://inspector.example',
      'access-control-request-method': 'POST',
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-user-id'), null);
  });
});

describe('forward-auth: challenges', () => {
  it('no token: 401 naming a metadata document whose resource is the URL the client called', async () => {
    const response = await check('/forward-auth/github', traefik('mcp.example.com', '/github/mcp'));
    assert.equal(response.status, 401);
    const expected = `${ISSUER}${forwardAuthMetadataPath('github')}`;
    assert.equal(response.headers.get('www-authenticate'), `Bearer resource_metadata="${expected}", scope="mcp:tools"`);
    assert.equal(response.headers.get('x-user-id'), null);
    // RFC 9728 §3.3: the client checks that `resource` equals the URL it called.
    const metadata = await fetch(base + new URL(expected).pathname);
    assert.equal(metadata.status, 200);
    assert.equal(metadata.headers.get('access-control-allow-origin'), '*');
    const document = (await metadata.json()) as Record<string, unknown>;
    assert.equal(document.resource, GITHUB);
    assert.deepEqual(document.authorization_servers, [ISSUER]);
    assert.deepEqual(document.scopes_supported, ['mcp:tools']);
  });

  it('a token for another server: 401 invalid_token', async () => {
    const response = await check('/forward-auth/github', {
      ...traefik('mcp.example.com', '/github/mcp'),
      authorization: `Bearer ${await token({ aud: APP })}`,
    });
    assert.equal(response.status, 401);
    assert.match(response.headers.get('www-authenticate') ?? '', /^Bearer error="invalid_token"/);
  });

  it('an expired token, a forged one, a malformed header: 401 invalid_token', async () => {
    for (const authorization of [`Bearer ${await token({ expiresIn: -60 })}`, `Bearer ${(await token()).slice(0, -4)}AAAA`, 'Bearer two tokens']) {
      const response = await check('/forward-auth/github', { ...traefik('mcp.example.com', '/github/mcp'), authorization });
      assert.equal(response.status, 401, authorization.slice(0, 20));
      assert.match(response.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    }
  });

  it('missing scope: 403 insufficient_scope listing every scope needed', async () => {
    const response = await check('/forward-auth/github', {
      ...traefik('mcp.example.com', '/github/mcp'),
      authorization: `Bearer ${await token({ scope: 'other' })}`,
    });
    assert.equal(response.status, 403);
    assert.equal(
      response.headers.get('www-authenticate'),
      `Bearer error="insufficient_scope", scope="mcp:tools", resource_metadata="${ISSUER}${forwardAuthMetadataPath('github')}"`,
    );
  });

  it('a token in the original query string: 401 invalid_request (proxies relay only 401/403)', async () => {
    const response = await check('/forward-auth/github', {
      ...traefik('mcp.example.com', `/github/mcp?access_token=${await token()}`),
      authorization: `Bearer ${await token()}`,
    });
    assert.equal(response.status, 401);
    assert.match(response.headers.get('www-authenticate') ?? '', /error="invalid_request"/);
  });

  it('a user that no longer exists, and one whose IdP session ended: 401', async () => {
    const ghost = await check('/forward-auth/github', {
      ...traefik('mcp.example.com', '/github/mcp'),
      authorization: `Bearer ${await token({ sub: 'corp:ghost' })}`,
    });
    assert.equal(ghost.status, 401);
    const bob = await check('/forward-auth/app', {
      ...traefik('app.internal:8443', '/mcp'),
      authorization: `Bearer ${await token({ aud: APP, sub: 'corp:bob', scope: '' })}`,
    });
    assert.equal(bob.status, 401);
    assert.match(bob.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    assert.equal(bob.headers.get('x-idp-token'), null);
  });
});

describe('forward-auth: never a token check for a request it does not protect', () => {
  it('a named check about another host or path: 403, no challenge, whatever the token', async () => {
    const valid = `Bearer ${await token()}`;
    for (const [host, uri] of [
      ['evil.example.com', '/github/mcp'],
      ['mcp.example.com', '/other/mcp'],
      ['mcp.example.com', '/githubx/mcp'],
    ] as const) {
      const response = await check('/forward-auth/github', { ...traefik(host, uri), authorization: valid });
      assert.equal(response.status, 403, `${host}${uri}`);
      assert.equal(response.headers.get('www-authenticate'), null);
      assert.equal(response.headers.get('x-user-id'), null);
    }
  });

  it('Envoy path for another route under a named prefix: 403', async () => {
    const response = await check('/forward-auth/github/admin/mcp', { host: 'mcp.example.com', authorization: `Bearer ${await token()}` });
    assert.equal(response.status, 403);
  });

  it('dot segments and encoded slashes in the raw URI are refused, not normalised', async () => {
    const valid = `Bearer ${await token({ aud: ADMIN, scope: 'mcp:admin' })}`;
    for (const uri of ['/github/admin/../../other', '/github/admin/%2e%2e/x', '/github/admin%2Fmcp', '/github\\admin', 'http://mcp.example.com/github/admin']) {
      const response = await check('/forward-auth', { ...traefik('mcp.example.com', uri), authorization: valid });
      assert.equal(response.status, 403, uri);
    }
  });

  it("a client-added X-Forwarded-Uri that disagrees with the proxy's X-Original-URI: 403", async () => {
    const response = await check('/forward-auth/github', {
      'x-original-uri': '/other/mcp',
      'x-forwarded-uri': '/github/mcp',
      'x-forwarded-host': 'mcp.example.com',
      authorization: `Bearer ${await token()}`,
    });
    assert.equal(response.status, 403);
  });

  it('a check that does not say which request it is about: 403', async () => {
    const response = await check('/forward-auth/github', { authorization: `Bearer ${await token()}` });
    assert.equal(response.status, 403);
  });

  it('unknown names, servers that are not forward-auth, unprotected hosts', async () => {
    const valid = `Bearer ${await token()}`;
    assert.equal((await check('/forward-auth/nope', { ...traefik('mcp.example.com', '/github'), authorization: valid })).status, 404);
    assert.equal((await check('/forward-auth/proxied', { ...traefik('gw.example.com', '/mcp'), authorization: valid })).status, 404);
    assert.equal((await check('/forward-auth', { ...traefik('gw.example.com', '/mcp'), authorization: valid })).status, 403);
    logLines.length = 0;
    assert.equal((await check('/forward-authx', traefik('mcp.example.com', '/github'))).status, 404, 'other paths are not forward-auth checks');
    assert.equal(
      (await fetch(`${base}/.well-known/oauth-protected-resource/forward-auth/proxied`)).status,
      404,
      'no document for a server that is not forward-auth',
    );
    assert.deepEqual(
      logLines.filter((line) => String(line.event).startsWith('forward_auth.')),
      [],
      'neither reached a check',
    );
  });

  it('an empty name segment is an unknown name, not a check by host', async () => {
    const valid = `Bearer ${await token()}`;
    assert.equal((await check('/forward-auth//github/mcp', { ...traefik('mcp.example.com', '/github/mcp'), authorization: valid })).status, 404);
  });

  it('wrong setup fails at start with a stable code', () => {
    assert.throws(
      () => createForwardAuth({ issuer: ISSUER, servers: servers(), logger: createLogger('silent') }),
      (error: unknown) => hasErrorCode(error, ErrorCode.FORWARD_AUTH_SETUP),
    );
  });
});

describe('forward-auth: logs', () => {
  it('allows at debug, denials at info with a reason, never the token', async () => {
    const bearer = await token();
    logLines.length = 0;
    await check('/forward-auth/github', { ...traefik('mcp.example.com', '/github/mcp'), authorization: `Bearer ${bearer}` });
    await check('/forward-auth/github', traefik('mcp.example.com', '/github/mcp'));
    await check('/forward-auth/github', { ...traefik('evil.example.com', '/github/mcp'), authorization: `Bearer ${bearer}` });
    const forwardAuthEvents = () => logLines.filter((line) => typeof line.event === 'string' && String(line.event).startsWith('forward_auth.'));
    // The logger writes asynchronously: wait for the three decisions' lines, not for a fixed time.
    for (let turn = 0; forwardAuthEvents().length < 3 && turn < 1_000; turn++) await new Promise((resolve) => setImmediate(resolve));
    const events = forwardAuthEvents();
    const allowed = events.find((line) => line.event === 'forward_auth.allowed');
    assert.equal(allowed?.level, 20, 'debug');
    assert.equal(allowed?.sub, 'corp:alice');
    const denials = events.filter((line) => line.event === 'forward_auth.denied');
    assert.deepEqual(
      denials.map((line) => [line.level, line.reason]),
      [
        [30, 'no_token'],
        [30, 'not_a_forward_auth_resource'],
      ],
    );
    assert.equal(JSON.stringify(logLines).includes(bearer.split('.')[2]!), false);
  });
});
