import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startDemoServer } from '../../src/demo/server.ts';
import { Browser } from '../support/browser.ts';
import { type CimdHost, startCimdHost } from '../support/cimd-host.ts';
import { connectWithLogin, TestOAuthClientProvider } from '../support/mcp-client.ts';
import { authorizeUrl, mcpInitialize, pkcePair, registerPublicClient } from './oauth.ts';
import { loggedInClient, type Stack, startStack } from './stack.ts';

describe('DCR client: discovery, registration, consent, upstream login, tools', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    await stack?.close();
  });

  test('the SDK client registers, logs in through the IdP and calls tools; the MCP server sees identity, never the token', async () => {
    const provider = new TestOAuthClientProvider({ mode: 'dcr', clientName: 'E2E DCR client' });
    const client = await loggedInClient(stack, provider);
    const tools = await client.listTools();
    assert.ok(tools.tools.some((tool) => tool.name === 'echo'));
    const echo = await client.callTool({ name: 'echo', arguments: { text: 'hello through the gateway' } });
    assert.match(JSON.stringify(echo.content), /hello through the gateway/);
    const whoami = await client.callTool({ name: 'whoami', arguments: {} });
    const seen = JSON.stringify(whoami.content);
    assert.match(seen, /alice@example\.com/);
    assert.match(seen, /corp:alice/);
    assert.match(seen, /authorizationHeaderPresent\\?":false/);
    await client.close();
  });
});

describe('consent, the browser binding and failures on the way', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    await stack?.close();
  });

  function authorizationUrlFor(clientId: string, redirectUri: string, extra: Record<string, string> = {}) {
    const { challenge } = pkcePair();
    return authorizeUrl(stack, {
      response_type: 'code',
      client_id: clientId,
      redirect_uri: redirectUri,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      state: 'st-123',
      scope: 'mcp:tools',
      resource: stack.mcpUrl(),
      ...extra,
    });
  }

  test('the consent page names the client, where it sends you back, the server and scopes; it cannot be framed', async () => {
    const client = await registerPublicClient(stack, 'https://app.example.net/oauth/callback', { client_name: 'Ünïcode <b>Client</b>' });
    const browser = new Browser({ ca: stack.ca.caPem });
    const page = await browser.goto(authorizationUrlFor(client.client_id, 'https://app.example.net/oauth/callback'));
    assert.equal(page.status, 200);
    assert.match(page.url.pathname, /^\/interaction\//);
    assert.ok(page.text.includes('Ünïcode <b>Client</b>'), 'name shown as text');
    assert.ok(!page.body.includes('<b>Client</b>'), 'name escaped');
    assert.ok(page.text.includes('app.example.net'));
    assert.ok(page.text.includes(stack.mcpUrl()));
    assert.ok(page.text.includes('mcp:tools'));
    assert.match(page.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
    assert.equal(page.headers.get('x-frame-options'), 'DENY');
    assert.equal(stack.idp.authorizationRequests.length, 0, 'nobody was sent to the IdP before consent');
  });

  test('an authorization naming two resources is refused at consent: a token is for exactly one MCP server', async () => {
    const client = await registerPublicClient(stack);
    const browser = new Browser({ ca: stack.ca.caPem });
    const url = authorizationUrlFor(client.client_id, client.redirect_uris[0]!);
    url.searchParams.append('resource', `${stack.mcpUrl()}/`); // valid, so it passes oidc-provider's invalid_target check
    const before = stack.idp.authorizationRequests.length;
    const page = await browser.goto(url, { stopAt: client.redirect_uris[0]! });
    assert.equal(page.status, 400, page.url.href);
    assert.match(page.text, /exactly one MCP server/);
    assert.equal(page.forms.length, 0, 'nothing to approve');
    assert.equal(stack.idp.authorizationRequests.length, before, 'nobody was sent to the IdP');
  });

  test('denying sends access_denied back to the client with iss (RFC 9207)', async () => {
    const client = await registerPublicClient(stack);
    const browser = new Browser({ ca: stack.ca.caPem });
    let page = await browser.goto(authorizationUrlFor(client.client_id, client.redirect_uris[0]!));
    page = await browser.submitForm(page, { button: 'deny', stopAt: client.redirect_uris[0]! });
    assert.ok(page.stopped);
    assert.equal(page.url.searchParams.get('error'), 'access_denied');
    assert.equal(page.url.searchParams.get('state'), 'st-123');
    assert.equal(page.url.searchParams.get('iss'), stack.issuer);
  });

  test('a forged consent form (wrong CSRF token) is refused', async () => {
    const client = await registerPublicClient(stack);
    const browser = new Browser({ ca: stack.ca.caPem });
    const page = await browser.goto(authorizationUrlFor(client.client_id, client.redirect_uris[0]!));
    const refused = await browser.submitForm(page, { button: 'approve', fields: { csrf: 'forged' } });
    assert.equal(refused.status, 403);
    const oversized = await fetch(new URL(`${page.url.pathname}/decision`, stack.issuer), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `decision=approve&filler=${'x'.repeat(64 * 1024)}`,
    });
    assert.equal(oversized.status, 413, 'a refused request keeps its status, it is not a server error');
  });

  test("the gateway goes to the IdP with its own PKCE, state, nonce and callback, and none of the client's parameters", async () => {
    const client = await registerPublicClient(stack);
    const browser = new Browser({ ca: stack.ca.caPem });
    let page = await browser.goto(authorizationUrlFor(client.client_id, client.redirect_uris[0]!));
    page = await browser.submitForm(page, { button: 'approve' });
    const sent = stack.idp.authorizationRequests.at(-1)!;
    assert.equal(sent.get('client_id'), 'mcp-gateway');
    assert.equal(sent.get('redirect_uri'), `${stack.issuer}/callback`);
    assert.equal(sent.get('code_challenge_method'), 'S256');
    assert.ok((sent.get('code_challenge') ?? '').length >= 43);
    assert.ok((sent.get('state') ?? '').length >= 32);
    assert.ok((sent.get('nonce') ?? '').length >= 32);
    assert.equal(sent.get('resource'), null, "the client's resource is never forwarded");
    assert.ok(!(sent.get('scope') ?? '').includes('mcp:tools'), "the client's scope is never forwarded");
    assert.notEqual(sent.get('state'), 'st-123');
  });

  test('the IdP callback in a browser that did not approve is refused, and the state cannot be replayed', async () => {
    const client = await registerPublicClient(stack);
    const victim = new Browser({ ca: stack.ca.caPem });
    const attacker = new Browser({ ca: stack.ca.caPem });
    let page = await attacker.goto(authorizationUrlFor(client.client_id, client.redirect_uris[0]!));
    page = await attacker.submitForm(page, { button: 'approve' });
    // The attacker signs in at the IdP but hands the callback URL to the victim's browser.
    const callback = await stack.idp.signIn(attacker, page, 'bob', { stopAt: `${stack.issuer}/callback` });
    assert.ok(callback.stopped);
    const inVictim = await victim.goto(callback.url);
    assert.equal(inVictim.status, 403);
    const replay = await attacker.goto(callback.url, { stopAt: client.redirect_uris[0]! });
    assert.equal(replay.status, 400, 'the state was consumed by the first use');
  });

  test('an IdP that denies the login ends in access_denied at the client', async () => {
    const client = await registerPublicClient(stack);
    const browser = new Browser({ ca: stack.ca.caPem });
    let page = await browser.goto(authorizationUrlFor(client.client_id, client.redirect_uris[0]!));
    page = await browser.submitForm(page, { button: 'approve' });
    page = await stack.idp.cancel(browser, page, { stopAt: client.redirect_uris[0]! });
    assert.ok(page.stopped, page.url.href);
    assert.equal(page.url.searchParams.get('error'), 'access_denied');
    assert.equal(page.url.searchParams.get('iss'), stack.issuer);
  });

  test('an IdP that is down ends in temporarily_unavailable at the client, without upstream details', async () => {
    const client = await registerPublicClient(stack);
    const browser = new Browser({ ca: stack.ca.caPem });
    let page = await browser.goto(authorizationUrlFor(client.client_id, client.redirect_uris[0]!));
    page = await browser.submitForm(page, { button: 'approve' });
    await stack.idp.stop();
    try {
      // The browser already holds the IdP login page; the token exchange then finds the IdP gone.
      const callbackPage = await browser.goto(`${stack.issuer}/callback?state=unknown&code=x`);
      assert.equal(callbackPage.status, 400, 'unknown state: error page, no redirect');
    } finally {
      await stack.idp.start();
    }
    page = await stack.idp.signIn(browser, page, 'alice', { stopAt: `${stack.issuer}/callback` });
    await stack.idp.stop();
    try {
      page = await browser.goto(page.url, { stopAt: client.redirect_uris[0]! });
    } finally {
      await stack.idp.start();
    }
    assert.ok(page.stopped, page.url.href);
    assert.equal(page.url.searchParams.get('error'), 'temporarily_unavailable');
    assert.ok(!/127\.0\.0\.1|ECONNREFUSED|fetch/i.test(page.url.searchParams.get('error_description') ?? ''), page.url.href);
  });

  test('PKCE is required, S256 only', async () => {
    const client = await registerPublicClient(stack);
    const browser = new Browser({ ca: stack.ca.caPem });
    const noPkce = await browser.goto(authorizationUrlFor(client.client_id, client.redirect_uris[0]!, { code_challenge: '', code_challenge_method: '' }), {
      stopAt: client.redirect_uris[0]!,
    });
    assert.equal(noPkce.url.searchParams.get('error'), 'invalid_request');
    const plain = await browser.goto(
      authorizationUrlFor(client.client_id, client.redirect_uris[0]!, { code_challenge: 'a'.repeat(43), code_challenge_method: 'plain' }),
      { stopAt: client.redirect_uris[0]! },
    );
    assert.equal(plain.url.searchParams.get('error'), 'invalid_request');
  });

  test('loopback redirects match on any port; an unregistered redirect URI gets an error page, never a redirect', async () => {
    const client = await registerPublicClient(stack, 'http://127.0.0.1/callback');
    const browser = new Browser({ ca: stack.ca.caPem });
    const otherPort = await browser.goto(authorizationUrlFor(client.client_id, 'http://127.0.0.1:61111/callback'));
    assert.match(otherPort.url.pathname, /^\/interaction\//, 'any port on loopback');
    const evil = await browser.goto(authorizationUrlFor(client.client_id, 'https://evil.example/callback'), {
      stopAt: (url) => url.hostname === 'evil.example',
    });
    assert.ok(!evil.stopped, 'no redirect to an unregistered URI');
    assert.equal(evil.status, 400);
    assert.match(evil.text, /redirect_uri/);
  });

  test('an MCP server that is down gives a clear error, and the gateway keeps serving', async () => {
    const provider = new TestOAuthClientProvider({ mode: 'dcr', clientName: 'Outage client' });
    const client = await loggedInClient(stack, provider);
    const token = provider.savedTokens.at(-1)!.access_token;
    const upstream = stack.upstreams.get('tools')!;
    const upstreamUrl = new URL(upstream.url);
    await upstream.close();
    try {
      const response = await mcpInitialize(stack.mcpUrl(), token);
      assert.equal(response.status, 502);
      const body = (await response.json()) as { error?: { message?: string } };
      assert.match(body.error?.message ?? '', /unavailable/i);
      const health = await fetch(`${stack.issuer}/healthz`);
      assert.equal(health.status, 200);
    } finally {
      const restarted = await startDemoServer({ host: '127.0.0.1', port: Number(upstreamUrl.port) });
      stack.upstreams.set('tools', restarted);
    }
    const again = await mcpInitialize(stack.mcpUrl(), token);
    assert.equal(again.status, 200, 'back once the server is back');
    await again.body?.cancel();
    await client.close().catch(() => {});
  });
});

describe('CIMD client: the client_id is an https URL of its metadata document', () => {
  let stack: Stack;
  let host: CimdHost;
  before(async () => {
    stack = await startStack();
    host = await startCimdHost({ tls: stack.ca });
  });
  after(async () => {
    await host?.close();
    await stack?.close();
  });

  test('the SDK client logs in with a metadata document served over https, and calls a tool', async () => {
    const redirectUrl = 'http://127.0.0.1:47311/callback';
    const documentUrl = host.document('/oauth/client.json', {
      client_name: 'CIMD E2E client',
      redirect_uris: ['http://127.0.0.1/callback'],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    });
    const provider = new TestOAuthClientProvider({ mode: 'cimd', clientMetadataUrl: documentUrl, redirectUrl });
    const browser = new Browser({ ca: stack.ca.caPem });
    let consentText = '';
    const client = await connectWithLogin({
      mcpUrl: stack.mcpUrl(),
      provider,
      fetch: stack.fetch,
      login: async (authorizationUrl) => {
        const consent = await browser.goto(authorizationUrl);
        consentText = consent.text;
        const idpPage = await browser.submitForm(consent, { button: 'approve' });
        return (await stack.idp.signIn(browser, idpPage, 'alice', { stopAt: redirectUrl })).url;
      },
    });
    assert.equal(provider.clientId, documentUrl, 'the URL itself is the client_id (no DCR fallback)');
    assert.ok(consentText.includes('CIMD E2E client'));
    assert.ok(consentText.includes(new URL(documentUrl).host), 'the publishing host is shown');
    assert.match(consentText, /only returns to programs on your own computer/, 'localhost-only warning');
    const echo = await client.callTool({ name: 'echo', arguments: { text: 'via cimd' } });
    assert.match(JSON.stringify(echo.content), /via cimd/);
    await client.close();
  });

  test('documents that redirect, are too large, or name another client_id are refused', async () => {
    const browser = new Browser({ ca: stack.ca.caPem });
    const cases: Array<[string, () => string]> = [
      [
        'redirect',
        () => {
          host.respond('/redirect.json', { status: 302, headers: { location: `${host.origin}/oauth/client.json` } });
          return `${host.origin}/redirect.json`;
        },
      ],
      ['too large', () => host.document('/large.json', { client_name: 'x'.repeat(10_000), redirect_uris: ['http://127.0.0.1/callback'] })],
      [
        'wrong client_id',
        () => {
          host.respond('/wrong.json', {
            status: 200,
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ client_id: 'https://elsewhere.example/c.json', client_name: 'x', redirect_uris: ['http://127.0.0.1/callback'] }),
          });
          return `${host.origin}/wrong.json`;
        },
      ],
    ];
    for (const [label, make] of cases) {
      const clientId = make();
      const { challenge } = pkcePair();
      const page = await browser.goto(
        authorizeUrl(stack, {
          response_type: 'code',
          client_id: clientId,
          redirect_uri: 'http://127.0.0.1:4000/callback',
          code_challenge: challenge,
          code_challenge_method: 'S256',
          state: 's',
        }),
        { stopAt: /127\.0\.0\.1:4000/ },
      );
      assert.ok(!page.stopped, `${label}: no redirect`);
      assert.equal(page.status, 400, `${label}: ${page.status} ${page.text.slice(0, 200)}`);
      assert.match(page.text, /invalid_client/, label);
    }
  });
});
