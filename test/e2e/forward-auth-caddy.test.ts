/**
 * Forward-auth with a real Caddy (Debian package) in front of a real MCP server (the demo server),
 * configured with the Caddyfile of docs/forward-auth.md ("Caddy"), read from the document itself so the
 * test runs what operators copy. The official SDK client connects to the Caddy URL, receives the 401
 * challenge through Caddy, logs in through the gateway and the corporate IdP, and calls tools through
 * Caddy; the MCP server sees the identity headers Caddy copied from the gateway's answer, never the token.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { type DemoServer, startDemoServer } from '../../src/demo/server.ts';
import { Browser } from '../support/browser.ts';
import { caddyUnavailable, type RunningCaddy, startCaddy } from '../support/caddy.ts';
import { connectWithLogin, TestOAuthClientProvider } from '../support/mcp-client.ts';
import { freePort } from '../support/ports.ts';
import {
  checkAudienceAcrossProxy,
  checkChallengeThroughProxy,
  checkIdentityAtServer,
  checkProgressStreams,
  connectThroughProxy,
  forwardAuthServer,
} from './forward-auth-checks.ts';
import { authorizeAndExchange, mcpInitialize, registerPublicClient } from './oauth.ts';
import { type Stack, startStack } from './stack.ts';

const SERVER = 'caddy-tools';
const DOC = new URL('../../docs/forward-auth.md', import.meta.url);

/** The ```caddyfile block of the "Caddy (`forward_auth`)" section of docs/forward-auth.md. */
function documentedCaddyfile(): string {
  const doc = readFileSync(DOC, 'utf8');
  const section = doc.slice(doc.indexOf('## Caddy (`forward_auth`)'));
  const block = /```caddyfile\n([\s\S]*?)\n```/.exec(section.slice(0, section.indexOf('\n## ', 1)));
  assert.ok(block, 'docs/forward-auth.md has a caddyfile block in its Caddy section');
  return block[1]!;
}

/**
 * The documented Caddyfile with the test's addresses: the site, the gateway and the MCP server
 * (`host:port`), the MCP path (the demo server serves `/mcp`, the docs say `/github`) and the
 * forward-auth server name. Every substitution must apply, so a changed document fails here loudly.
 */
function caddyfile(port: number, gateway: string, mcpUpstream: string): string {
  let text = documentedCaddyfile();
  const substitutions: Array<[from: RegExp, to: string]> = [
    [/^mcp\.example\.com \{/m, `http://127.0.0.1:${port} {`],
    [/auth\.internal:8080/g, new URL(gateway).host],
    [/github-mcp\.internal:3000/g, new URL(mcpUpstream).host],
    [/\/forward-auth\/github\b/g, `/forward-auth/${SERVER}`],
    [/route \/github\*/g, 'route /mcp*'],
  ];
  for (const [from, to] of substitutions) {
    assert.match(text, from, `the documented Caddyfile contains ${from}`);
    text = text.replace(from, to);
  }
  return text;
}

const unavailable = caddyUnavailable();

describe('forward-auth behind a real Caddy', { skip: unavailable ?? false }, () => {
  let stack: Stack;
  let caddy: RunningCaddy;
  let mcp: DemoServer;
  let resource: string;

  before(async () => {
    const caddyPort = await freePort();
    resource = `http://127.0.0.1:${caddyPort}/mcp`;
    mcp = await startDemoServer({ host: '127.0.0.1', port: 0 });
    stack = await startStack({
      extraServers: [forwardAuthServer(SERVER, '/caddy-tools', resource)],
      // A user the IdP knows no name for: the gateway sends no X-User-Name for her.
      idpUsers: { carol: { email: 'carol@example.com', email_verified: true } },
    });
    caddy = await startCaddy({ port: caddyPort, caddyfile: (port) => caddyfile(port, stack.gateway.listenUrl, mcp.url) });
  });

  after(async () => {
    await caddy?.close();
    await stack?.close();
    await mcp?.close();
  });

  it("answers an anonymous request with the gateway's challenge, once, and its JSON body", async () => {
    await checkChallengeThroughProxy(stack, caddy.url, resource, SERVER);
  });

  it('the SDK client logs in through the gateway and calls tools through Caddy, as the user', async () => {
    const client = await connectThroughProxy(stack, resource, 'Caddy');
    try {
      await checkIdentityAtServer(client, 'Caddy');
      await checkProgressStreams(client);
    } finally {
      await client.close();
    }
  });

  it('drops a client-sent identity header the gateway does not send (the documented vars copy, not copy_headers)', async () => {
    const provider = new TestOAuthClientProvider({ mode: 'dcr', clientName: 'caddy client for carol' });
    const browser = new Browser({ ca: stack.ca.caPem });
    const forging: typeof fetch = (input, init) => {
      const headers = new Headers(init?.headers);
      headers.set('x-user-name', 'Mallory');
      return stack.fetch(input, { ...init, headers });
    };
    const client = await connectWithLogin({
      mcpUrl: resource,
      provider,
      fetch: forging,
      login: async (authorizationUrl) => {
        let page = await browser.goto(authorizationUrl, { stopAt: provider.redirectUrl });
        page = await browser.submitForm(page, { button: 'approve' });
        return (await stack.idp.signIn(browser, page, 'carol', { stopAt: provider.redirectUrl })).url;
      },
    });
    try {
      const result = await client.callTool({ name: 'whoami', arguments: {} });
      const identity = (result.structuredContent as { identity: Record<string, string> }).identity;
      assert.equal(identity['x-user-email'], 'carol@example.com');
      // With Caddy 2.6's copy_headers the MCP server got '{http.reverse_proxy.header.X-User-Name}'
      // here; without the request_header deletions it would get the client's 'Mallory'.
      assert.equal(identity['x-user-name'], undefined, `x-user-name reached the MCP server: ${JSON.stringify(identity)}`);
    } finally {
      await client.close();
    }
  });

  it('refuses through Caddy a token issued for another MCP server, and the gateway refuses the Caddy token', async () => {
    const caddyToken = await checkAudienceAcrossProxy(stack, resource, 'Caddy');
    // `route /mcp*` also matches /mcpx, which is not under the resource: the gateway says no ...
    assert.equal((await mcpInitialize(`${caddy.url}/mcpx`, caddyToken)).status, 403);
    // ... even when the client claims the original request was /mcp: Caddy overwrites X-Forwarded-Uri
    // (forward_auth sets it) and X-Forwarded-Host (reverse_proxy, no trusted_proxies configured).
    const forged = await mcpInitialize(`${caddy.url}/mcpx`, caddyToken, { 'x-forwarded-uri': '/mcp', 'x-forwarded-host': new URL(resource).host });
    assert.equal(forged.status, 403);
    const otherHost = await mcpInitialize(resource, caddyToken, { 'x-forwarded-host': 'evil.example.com' });
    assert.equal(otherHost.status, 200, 'a client-sent X-Forwarded-Host does not reach the gateway');
  });

  it('relays 403 insufficient_scope with its challenge', async () => {
    const browser = new Browser({ ca: stack.ca.caPem });
    const client = await registerPublicClient(stack, 'http://127.0.0.1:5558/callback');
    const tokens = await authorizeAndExchange(stack, browser, client, { resource, scope: 'mcp:tools' });
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    const response = await mcpInitialize(resource, String(tokens.body.access_token));
    assert.equal(response.status, 403);
    assert.equal(
      response.headers.get('www-authenticate'),
      `Bearer error="insufficient_scope", scope="mcp:tools mcp:admin", resource_metadata="${stack.issuer}/.well-known/oauth-protected-resource/forward-auth/${SERVER}"`,
    );

    // What an MCP client does with it: the SDK transport surfaces the 403 and its challenge.
    const transport = new StreamableHTTPClientTransport(new URL(resource), {
      fetch: (input, init) => {
        const headers = new Headers(init?.headers);
        headers.set('authorization', `Bearer ${String(tokens.body.access_token)}`);
        return fetch(input, { ...init, headers });
      },
    });
    const sdkClient = new Client({ name: 'scope-less', version: '0' });
    await assert.rejects(sdkClient.connect(transport), /403|insufficient_scope|Forbidden/);
    await sdkClient.close();
  });

  it('a client without a session or token still cannot reach the MCP server through Caddy', async () => {
    const transport = new StreamableHTTPClientTransport(new URL(resource), { fetch: stack.fetch });
    const client = new Client({ name: 'anonymous', version: '0' });
    await assert.rejects(client.connect(transport), /invalid_token/);
    await client.close();
  });
});
