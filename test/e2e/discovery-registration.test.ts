/**
 * What clients find before they log in: metadata at every location they probe, CORS for browser-based
 * clients, and registration of the real bodies MCP clients send (CLIENTS.md §2).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Browser } from '../support/browser.ts';
import { startStack, type Stack } from './stack.ts';
import { authorizeUrl, pkcePair, register } from './oauth.ts';

describe('discovery', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack();
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
    const documents = await Promise.all(paths.map(async (path) => {
      const response = await fetch(`${stack.issuer}${path}`, { headers: { origin: 'http://localhost:6274' } });
      assert.equal(response.status, 200, path);
      assert.ok(['*', 'http://localhost:6274'].includes(response.headers.get('access-control-allow-origin') ?? ''), `${path}: CORS for browser clients`);
      return (await response.json()) as Record<string, unknown>;
    }));
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

  test('unknown paths are a plain 404 without a challenge', async () => {
    const response = await fetch(`${stack.issuer}/nothing/here`);
    assert.equal(response.status, 404);
    assert.equal(response.headers.get('www-authenticate'), null);
  });
});

describe('dynamic client registration', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({ configure: (config) => { config.registration = { unusedClientTtl: 1 }; } });
  });
  after(async () => {
    await stack?.close();
  });

  const realBodies: Record<string, Record<string, unknown>> = {
    cursor: {
      client_name: 'Cursor',
      redirect_uris: ['cursor://anysphere.cursor-mcp/oauth/callback', 'https://www.cursor.com/agents/mcp/oauth/callback', 'http://localhost:8787/callback'],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    },
    vscode: {
      client_name: 'Visual Studio Code',
      application_type: 'native',
      redirect_uris: ['https://insiders.vscode.dev/redirect', 'https://vscode.dev/redirect', 'http://127.0.0.1/', 'http://127.0.0.1:33418/'],
      grant_types: ['authorization_code', 'refresh_token'],
      token_endpoint_auth_method: 'none',
    },
    claude: {
      client_name: 'Claude',
      redirect_uris: ['https://claude.ai/api/mcp/auth_callback'],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      scope: 'mcp:tools',
    },
    'claude-code': { client_name: 'Claude Code (tools)', redirect_uris: ['http://localhost:54321/callback'], grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: 'none' },
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
    await sleep(1500);
    const browser = new Browser({ ca: stack.ca.caPem });
    const { challenge } = pkcePair();
    const page = await browser.goto(authorizeUrl(stack, { response_type: 'code', client_id: String(body.client_id), redirect_uri: 'http://127.0.0.1:5000/callback', code_challenge: challenge, code_challenge_method: 'S256', state: 's' }), { stopAt: (url) => url.port === '5000' });
    assert.ok(!page.stopped);
    assert.equal(page.status, 400);
    assert.match(page.text, /invalid_client/);
    const token = await fetch(`${stack.issuer}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'x', client_id: String(body.client_id) }) });
    assert.equal(((await token.json()) as { error: string }).error, 'invalid_client', 'so that the client registers again');
  });
});
