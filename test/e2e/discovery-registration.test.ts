/**
 * What clients find before they log in: metadata at every location they probe, CORS for browser-based
 * clients, and registration of the real bodies MCP clients send (test/support/client-profiles.ts).
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { configSchema } from '../../src/config/schema.ts';
import { Browser } from '../support/browser.ts';
import { CURSOR_METADATA, VSCODE_METADATA } from '../support/client-profiles.ts';
import { TestClock } from '../support/clock.ts';
import { authorizeAndExchange, authorizeUrl, inspectAccessToken, pkcePair, register, registerPublicClient } from './oauth.ts';
import { type Stack, startStack } from './stack.ts';

describe('discovery', () => {
  let stack: Stack;
  before(async () => {
    // A second MCP server under the first one's path: path-inserted PRM and AS aliases must tell them apart.
    stack = await startStack({ extraServers: [{ name: 'admin', path: '/mcp/admin', upstream: { url: 'demo' }, scopes: ['mcp:admin'] }] });
  });
  after(async () => {
    await stack?.close();
  });

  test('RFC 8414 and OIDC metadata are the same document, at every location clients probe', async () => {
    const paths = [
      '/.well-known/oauth-authorization-server',
      '/.well-known/openid-configuration',
      '/.well-known/oauth-authorization-server/mcp',
      '/.well-known/openid-configuration/mcp',
      '/mcp/.well-known/openid-configuration',
    ];
    const documents = await Promise.all(
      paths.map(async (path) => {
        const response = await fetch(`${stack.issuer}${path}`, { headers: { origin: 'http://localhost:6274' } });
        assert.equal(response.status, 200, path);
        assert.ok(['*', 'http://localhost:6274'].includes(response.headers.get('access-control-allow-origin') ?? ''), `${path}: CORS for browser clients`);
        return (await response.json()) as Record<string, unknown>;
      }),
    );
    for (const document of documents) assert.deepEqual(document, documents[0]);
    const metadata = documents[0]!;
    assert.equal(metadata.issuer, stack.issuer, 'issuer is the origin, no trailing slash');
    assert.deepEqual(metadata.code_challenge_methods_supported, ['S256']);
    assert.equal((metadata.token_endpoint_auth_methods_supported as string[])[0], 'none');
    assert.equal(metadata.client_id_metadata_document_supported, true);
    assert.equal(metadata.authorization_response_iss_parameter_supported, true);
    assert.equal(metadata.authorization_endpoint, `${stack.issuer}/authorize`);
    assert.equal(metadata.token_endpoint, `${stack.issuer}/token`);
    assert.equal(metadata.registration_endpoint, `${stack.issuer}/register`);
    assert.equal(metadata.revocation_endpoint, `${stack.issuer}/revoke`);
    assert.deepEqual(metadata.response_types_supported, ['code']);
    assert.ok(!('dpop_signing_alg_values_supported' in metadata), 'no DPoP: the resource server takes Bearer tokens');
  });

  test('protected resource metadata (RFC 9728) at the path-inserted location and at the root', async () => {
    for (const path of ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource']) {
      const response = await fetch(`${stack.issuer}${path}`);
      assert.equal(response.status, 200, path);
      const prm = (await response.json()) as Record<string, unknown>;
      assert.equal(prm.resource, stack.mcpUrl());
      assert.deepEqual(prm.authorization_servers, [stack.issuer]);
      assert.deepEqual(prm.scopes_supported, ['mcp:tools']);
      assert.deepEqual(prm.bearer_methods_supported, ['header']);
    }
  });

  test('browser clients can register and exchange tokens cross-origin (CORS preflight), and read WWW-Authenticate', async () => {
    for (const path of ['/register', '/token']) {
      const preflight = await fetch(`${stack.issuer}${path}`, {
        method: 'OPTIONS',
        headers: { origin: 'http://localhost:6274', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
      });
      assert.ok(preflight.status === 204 || preflight.status === 200, `${path}: ${preflight.status}`);
      assert.ok(['*', 'http://localhost:6274'].includes(preflight.headers.get('access-control-allow-origin') ?? ''), path);
      assert.notEqual(preflight.headers.get('access-control-allow-credentials'), 'true', `${path}: no credentials cross-origin`);
    }
    const challenge = await fetch(stack.mcpUrl(), { method: 'POST', headers: { origin: stack.issuer, 'content-type': 'application/json' }, body: '{}' });
    assert.equal(challenge.status, 401);
    assert.match(challenge.headers.get('access-control-expose-headers') ?? '', /www-authenticate/i);
  });

  test('each MCP server has its own path-inserted PRM; the root PRM describes the first; AS aliases under any MCP path name one issuer', async () => {
    const admin = (await (await fetch(`${stack.issuer}/.well-known/oauth-protected-resource/mcp/admin`)).json()) as Record<string, unknown>;
    assert.equal(admin.resource, stack.mcpUrl('/mcp/admin'));
    assert.deepEqual(admin.scopes_supported, ['mcp:admin']);
    assert.deepEqual(admin.authorization_servers, [stack.issuer]);
    const challenge = await fetch(stack.mcpUrl('/mcp/admin'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(challenge.status, 401);
    assert.match(
      challenge.headers.get('www-authenticate') ?? '',
      new RegExp(`resource_metadata="${stack.issuer}/\\.well-known/oauth-protected-resource/mcp/admin"`),
    );
    for (const path of [
      '/.well-known/oauth-authorization-server/mcp/admin',
      '/.well-known/openid-configuration/mcp/admin',
      '/mcp/admin/.well-known/openid-configuration',
    ]) {
      const response = await fetch(`${stack.issuer}${path}`);
      assert.equal(response.status, 200, path);
      assert.equal(((await response.json()) as { issuer: string }).issuer, stack.issuer, path);
    }
  });

  test('the issuer string is identical everywhere: metadata, PRM, the authorization response (RFC 9207) and the token', async () => {
    const metadata = (await (await fetch(`${stack.issuer}/.well-known/oauth-authorization-server`)).json()) as { issuer: string };
    const prm = (await (await fetch(`${stack.issuer}/.well-known/oauth-protected-resource/mcp`)).json()) as { authorization_servers: string[] };
    const client = await registerPublicClient(stack);
    const browser = new Browser({ ca: stack.ca.caPem });
    const redirectUri = client.redirect_uris[0]!;
    const { verifier, challenge } = pkcePair();
    const url = authorizeUrl(stack, {
      response_type: 'code',
      client_id: client.client_id,
      redirect_uri: redirectUri,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      state: 'iss-check',
      scope: 'mcp:tools',
      resource: stack.mcpUrl(),
    });
    let page = await browser.goto(url);
    page = await browser.submitForm(page, { button: 'approve' });
    page = await stack.idp.signIn(browser, page, 'alice', { stopAt: redirectUri });
    const tokens = await fetch(`${stack.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code: page.url.searchParams.get('code')!,
        redirect_uri: redirectUri,
        code_verifier: verifier,
        client_id: client.client_id,
      }),
    });
    const accessToken = ((await tokens.json()) as { access_token: string }).access_token;
    const issuers = [metadata.issuer, prm.authorization_servers[0], page.url.searchParams.get('iss'), inspectAccessToken(accessToken).claims.iss];
    assert.deepEqual(
      issuers,
      issuers.map(() => stack.issuer),
    );
    assert.ok(!stack.issuer.endsWith('/'), 'no trailing slash');
    await browser.close();
  });

  test('resource in every spelling clients use (trailing slash, uppercase scheme or host) names the same MCP server; another is invalid_target', async () => {
    const client = await registerPublicClient(stack);
    const browser = new Browser({ ca: stack.ca.caPem });
    const mcp = new URL(stack.mcpUrl());
    const spellings = [
      stack.mcpUrl(),
      `${stack.mcpUrl()}/`,
      `HTTP://${mcp.host}${mcp.pathname}`,
      `http://${mcp.host.toUpperCase()}${mcp.pathname}`,
      `HTTP://${mcp.host.toUpperCase()}${mcp.pathname}/`,
    ];
    for (const resource of spellings) {
      const { challenge } = pkcePair();
      const page = await browser.goto(
        authorizeUrl(stack, {
          response_type: 'code',
          client_id: client.client_id,
          redirect_uri: client.redirect_uris[0]!,
          code_challenge: challenge,
          code_challenge_method: 'S256',
          state: 's',
          resource,
        }),
        { stopAt: client.redirect_uris[0]! },
      );
      assert.ok(!page.stopped && page.url.pathname.startsWith('/interaction/'), `${resource}: ${page.toString()}`);
      assert.ok(page.text.includes(stack.mcpUrl()), `${resource}: consent names the canonical MCP URL`);
      assert.ok(!page.text.includes(stack.mcpUrl('/mcp/admin')), `${resource}: and not the other server`);
    }
    // Full exchange with a trailing-slash resource on both requests: the token is for the canonical URL.
    const exchanged = await authorizeAndExchange(stack, browser, client, { resource: `${stack.mcpUrl()}/` });
    assert.equal(exchanged.status, 200, JSON.stringify(exchanged.body));
    assert.equal(inspectAccessToken(String(exchanged.body.access_token)).claims.aud, stack.mcpUrl());
    const { challenge } = pkcePair();
    const foreign = await browser.goto(
      authorizeUrl(stack, {
        response_type: 'code',
        client_id: client.client_id,
        redirect_uri: client.redirect_uris[0]!,
        code_challenge: challenge,
        code_challenge_method: 'S256',
        state: 's',
        resource: `${stack.issuer}/not-a-server`,
      }),
      { stopAt: client.redirect_uris[0]! },
    );
    assert.ok(foreign.stopped);
    assert.equal(foreign.url.searchParams.get('error'), 'invalid_target');
    await browser.close();
  });

  test('CORS preflights answer the headers MCP client libraries add (MCP-Protocol-Version), never with credentials', async () => {
    const paths: Array<[string, string]> = [
      ['/.well-known/oauth-authorization-server', 'GET'],
      ['/.well-known/openid-configuration', 'GET'],
      ['/.well-known/oauth-authorization-server/mcp', 'GET'],
      ['/.well-known/oauth-protected-resource/mcp', 'GET'],
      ['/.well-known/oauth-protected-resource', 'GET'],
      ['/register', 'POST'],
      ['/token', 'POST'],
      ['/revoke', 'POST'],
    ];
    for (const [path, method] of paths) {
      const preflight = await fetch(`${stack.issuer}${path}`, {
        method: 'OPTIONS',
        headers: {
          origin: 'http://localhost:6274',
          'access-control-request-method': method,
          'access-control-request-headers': 'content-type, mcp-protocol-version',
        },
      });
      assert.ok(preflight.status === 204 || preflight.status === 200, `${path}: ${preflight.status}`);
      assert.ok(['*', 'http://localhost:6274'].includes(preflight.headers.get('access-control-allow-origin') ?? ''), path);
      assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /mcp-protocol-version/i, path);
      assert.match(preflight.headers.get('access-control-allow-methods') ?? '', new RegExp(method), path);
      assert.equal(preflight.headers.get('access-control-allow-credentials'), null, `${path}: no credentials`);
    }
  });

  test('pages a person may see carry the security headers; an unknown client_id at /authorize gets an error page, not a redirect', async () => {
    const browser = new Browser({ ca: stack.ca.caPem });
    const { challenge } = pkcePair();
    const page = await browser.goto(
      authorizeUrl(stack, {
        response_type: 'code',
        client_id: 'never-registered',
        redirect_uri: 'http://127.0.0.1:5001/callback',
        code_challenge: challenge,
        code_challenge_method: 'S256',
        state: 's',
      }),
      { stopAt: (url) => url.port === '5001' },
    );
    // RFC 6749 §4.1.2.1: with an unknown client the redirect URI cannot be trusted, so no redirect.
    assert.ok(!page.stopped, 'no redirect to an unverified redirect URI');
    assert.equal(page.status, 400);
    assert.match(page.text, /invalid_client/);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    assert.match(page.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
    assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(page.headers.get('referrer-policy'), 'no-referrer');
    assert.equal(page.headers.get('x-frame-options'), 'DENY');
    assert.ok(!/oidc-provider|node_modules|at .*\.js/.test(page.body), 'nothing internal on the page');
    await browser.close();
  });

  test('unknown paths are a plain 404 without a challenge', async () => {
    const response = await fetch(`${stack.issuer}/nothing/here`);
    assert.equal(response.status, 404);
    assert.equal(response.headers.get('www-authenticate'), null);
  });
});

describe('dynamic client registration', () => {
  let stack: Stack;
  /** The gateway's clock: registrations expire by it (storage TTL), so the test moves it. */
  const clock = new TestClock();
  before(async () => {
    stack = await startStack({ clock });
  });
  after(async () => {
    await stack?.close();
  });

  const realBodies: Record<string, Record<string, unknown>> = {
    cursor: CURSOR_METADATA,
    vscode: VSCODE_METADATA,
    claude: {
      client_name: 'Claude',
      redirect_uris: ['https://claude.ai/api/mcp/auth_callback'],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      scope: 'mcp:tools',
    },
    'claude-code': {
      client_name: 'Claude Code (tools)',
      redirect_uris: ['http://localhost:54321/callback'],
      grant_types: ['authorization_code', 'refresh_token'],
      token_endpoint_auth_method: 'none',
    },
    'mcp-remote': { client_name: 'MCP CLI Client', redirect_uris: ['http://localhost:3334/oauth/callback'], token_endpoint_auth_method: 'none' },
    'no auth method (RFC 7591 default)': { client_name: 'Old client', redirect_uris: ['https://old.example/cb'] },
  };

  for (const [name, body] of Object.entries(realBodies)) {
    test(`${name} registers and gets its own client_id`, async () => {
      const { status, body: registered } = await register(stack, body);
      assert.equal(status, 201, JSON.stringify(registered));
      assert.equal(typeof registered.client_id, 'string');
      assert.deepEqual(registered.redirect_uris, body.redirect_uris);
      assert.ok((registered.grant_types as string[]).includes('refresh_token'));
      assert.ok(!JSON.stringify(registered).includes('mcp-gateway'), 'the IdP app never leaks');
      assert.ok(!JSON.stringify(registered).includes('idp-app-secret'), 'the IdP secret never leaks');
      if (body.token_endpoint_auth_method === undefined) {
        assert.equal(registered.token_endpoint_auth_method, 'client_secret_basic', 'answers with the method it enforces');
        assert.equal(typeof registered.client_secret, 'string');
      } else {
        assert.equal(registered.token_endpoint_auth_method, 'none');
        assert.equal(registered.client_secret, undefined);
      }
    });
  }

  test('registrations are refused with a clear error for unsafe redirect URIs and malformed bodies', async () => {
    const httpRemote = await register(stack, { client_name: 'x', redirect_uris: ['http://app.example/cb'] });
    assert.equal(httpRemote.status, 400);
    assert.equal(httpRemote.body.error, 'invalid_redirect_uri');
    assert.match(String(httpRemote.body.error_description), /http:\/\/app\.example\/cb/);
    const script = await register(stack, { client_name: 'x', redirect_uris: ['javascript:alert(1)'] });
    assert.equal(script.body.error, 'invalid_redirect_uri');
    const notJson = await fetch(`${stack.issuer}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{not json' });
    assert.equal(notJson.status, 400);
    assert.equal(((await notJson.json()) as { error: string }).error, 'invalid_client_metadata');
  });

  test('a registration never used for a login expires, and its client_id is then unknown (invalid_client)', async () => {
    const { body } = await register(stack, { client_name: 'Ephemeral', redirect_uris: ['http://127.0.0.1/callback'], token_endpoint_auth_method: 'none' });
    // Past registration.unusedClientTtl (a day by default) on the gateway's clock; this is the
    // describe's last test, as the gateway's time no longer matches its oidc-provider's afterwards.
    clock.advance(configSchema.parse(stack.config).registration.unusedClientTtl * 1000);
    const browser = new Browser({ ca: stack.ca.caPem });
    const { challenge } = pkcePair();
    const page = await browser.goto(
      authorizeUrl(stack, {
        response_type: 'code',
        client_id: String(body.client_id),
        redirect_uri: 'http://127.0.0.1:5000/callback',
        code_challenge: challenge,
        code_challenge_method: 'S256',
        state: 's',
      }),
      { stopAt: (url) => url.port === '5000' },
    );
    assert.ok(!page.stopped);
    assert.equal(page.status, 400);
    assert.match(page.text, /invalid_client/);
    const token = await fetch(`${stack.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'x', client_id: String(body.client_id) }),
    });
    assert.equal(((await token.json()) as { error: string }).error, 'invalid_client', 'so that the client registers again');
  });
});

describe('registration hygiene: unknown clients re-register, registrations are rate-limited per address', () => {
  let stack: Stack;
  /**
   * The gateway's clock, which times the rate-limit windows. Standing still, it cannot cross a window
   * boundary in the middle of a test, which the wall clock could.
   */
  const clock = new TestClock();
  before(async () => {
    stack = await startStack({
      clock,
      configure: (config) => {
        // trustProxy: the address the proxy appended to X-Forwarded-For counts; without the header, the socket's.
        config.trustProxy = true;
        config.registration = { rateLimit: { perAddress: 3, windowSeconds: 3600 } };
      },
    });
  });
  after(async () => {
    await stack?.close();
  });

  const body = { client_name: 'Claude', redirect_uris: ['https://claude.ai/api/mcp/auth_callback'], token_endpoint_auth_method: 'none' };
  const registerFrom = (forwardedFor?: string) =>
    fetch(`${stack.issuer}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(forwardedFor ? { 'x-forwarded-for': forwardedFor } : {}) },
      body: JSON.stringify(body),
    });

  test('an unknown client_id gets 401 invalid_client at /token, and registering again gets a working client', async () => {
    const grants: Array<Record<string, string>> = [
      { grant_type: 'authorization_code', code: 'x', redirect_uri: 'https://claude.ai/api/mcp/auth_callback', code_verifier: 'x'.repeat(43) },
      { grant_type: 'refresh_token', refresh_token: 'x' },
    ];
    for (const grant of grants) {
      const response = await fetch(`${stack.issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ ...grant, client_id: 'deleted-or-expired-client' }),
      });
      assert.equal(response.status, 401, grant.grant_type!);
      assert.equal(((await response.json()) as { error: string }).error, 'invalid_client', 'Claude re-registers on 401 invalid_client');
    }
    const again = await registerFrom('198.51.100.77');
    assert.equal(again.status, 201);
    const client = (await again.json()) as { client_id: string };
    const browser = new Browser({ ca: stack.ca.caPem });
    const { challenge } = pkcePair();
    const consent = await browser.goto(
      authorizeUrl(stack, {
        response_type: 'code',
        client_id: client.client_id,
        redirect_uri: body.redirect_uris[0]!,
        code_challenge: challenge,
        code_challenge_method: 'S256',
        state: 's',
        resource: stack.mcpUrl(),
      }),
      { stopAt: body.redirect_uris[0]! },
    );
    assert.match(consent.url.pathname, /^\/interaction\//, 'the new registration goes on to consent');
    await browser.close();
  });

  test('over the limit: 429 with Retry-After and an OAuth error body; other addresses are unaffected; a forged X-Forwarded-For entry does not help', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await registerFrom('203.0.113.5')).status, 201, `registration ${i + 1}`);
    const refused = await registerFrom('203.0.113.5');
    assert.equal(refused.status, 429);
    const retryAfter = Number(refused.headers.get('retry-after'));
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 3600, `Retry-After ${refused.headers.get('retry-after')}`);
    assert.match(refused.headers.get('content-type') ?? '', /application\/json/);
    assert.equal(refused.headers.get('cache-control'), 'no-store');
    const error = (await refused.json()) as { error: string; error_description: string };
    assert.equal(error.error, 'temporarily_unavailable');
    assert.match(error.error_description, /too many client registrations/i);
    assert.equal(refused.headers.get('access-control-allow-origin'), '*', 'a browser client can read why');
    // Only our proxy's entry (the last) counts; what the client wrote to its left is ignored.
    assert.equal((await registerFrom('192.0.2.200, 203.0.113.5')).status, 429, 'spoofed left entries do not reset the count');
    assert.equal((await registerFrom('203.0.113.6')).status, 201, 'another address has its own count');
    // Without the header, the socket address (127.0.0.1) is counted on its own.
    assert.equal((await registerFrom()).status, 201);
    // Retry-After is honest: a second before it the address is still refused, at it the window is new.
    clock.advance((retryAfter - 1) * 1000);
    assert.equal((await registerFrom('203.0.113.5')).status, 429, 'still inside the window');
    clock.advance(1000);
    assert.equal((await registerFrom('203.0.113.5')).status, 201, 'a new window');
  });

  test('a malformed registration from a flooding address is refused by the limit before its body is parsed', async () => {
    for (let i = 0; i < 3; i++) await (await registerFrom('203.0.113.9')).body?.cancel();
    const response = await fetch(`${stack.issuer}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': '203.0.113.9' },
      body: '{not json',
    });
    assert.equal(response.status, 429);
    await response.body?.cancel();
  });
});
