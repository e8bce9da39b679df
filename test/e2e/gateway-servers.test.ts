/**
 * Several MCP servers behind one gateway, end to end: real IdP (oidc-provider), real logins through
 * the SDK client, real MCP servers. Proves audience binding across path- and host-routed servers, and
 * the hand-over of the user's own IdP access token (refreshed when it expires, a 401 when the IdP
 * refuses the refresh, a 503 when the IdP fails).
 */
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { DemoServer } from '../../src/demo/server.ts';
import { startDemoServer } from '../../src/demo/server.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Browser } from '../support/browser.ts';
import { connectWithLogin, TestOAuthClientProvider } from '../support/mcp-client.ts';
import { revokeAtIdp } from '../support/oidc-idp.ts';
import { answerStatelessly } from '../support/stateless-mcp.ts';
import { tokenRequest } from './oauth.ts';
import type { Stack } from './stack.ts';
import { approveAndSignIn, loggedInClient, startStack, storedIdpTokens } from './stack.ts';

/** A stateless MCP server whose `idp_token` tool reports the IdP-token header it received. */
async function startIdpEcho(): Promise<{ url: string; http: Server; close(): Promise<void> }> {
  const http = createServer((req, res) => {
    const server = new McpServer({ name: 'idp-echo', version: '1.0.0' });
    server.registerTool('idp_token', { description: 'reports the x-idp-token header' }, async (extra) => ({
      content: [
        {
          type: 'text',
          text: JSON.stringify({ token: extra.requestInfo?.headers['x-idp-token'] ?? null, user: extra.requestInfo?.headers['x-user-id'] ?? null }),
        },
      ],
    }));
    answerStatelessly(server, req, res, { enableJsonResponse: true });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`,
    http,
    close: () =>
      new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      }),
  };
}

/** The IdP's userinfo for an access token: proves whose IdP token the upstream received. */
async function userinfoSub(stack: Stack, accessToken: string): Promise<string | undefined> {
  const discovery = (await (await stack.fetch(`${stack.idp.issuer}/.well-known/openid-configuration`)).json()) as { userinfo_endpoint: string };
  const response = await stack.fetch(discovery.userinfo_endpoint, { headers: { authorization: `Bearer ${accessToken}` } });
  if (!response.ok) return undefined;
  return ((await response.json()) as { sub?: string }).sub;
}

function textOf(result: unknown): string {
  return (result as { content: Array<{ text: string }> }).content[0]!.text;
}

const logLines: string[] = [];
let stack: Stack;
let idpEcho: Awaited<ReturnType<typeof startIdpEcho>>;
/** The gateway's listener under its other loopback name, for the host-routed server. */
let hostedBase: string;
let hostedDemo: DemoServer;

before(async () => {
  idpEcho = await startIdpEcho();
  hostedDemo = await startDemoServer({ host: '127.0.0.1', port: 0 });
  stack = await startStack({
    // Short IdP access tokens: each use needs a refresh (the gateway refreshes within 60 s of expiry).
    idpTtl: { accessToken: 30 },
    logger: createLogger('info', { write: (line: string) => void logLines.push(line) }),
    extraServers: [
      { name: 'other', path: '/other', upstream: { url: 'demo' }, identityHeaders: { subject: 'x-user-id' } },
      { name: 'idp-echo', path: '/idp-echo', upstream: { url: idpEcho.url }, identityHeaders: { subject: 'x-user-id' }, idpToken: { header: 'X-Idp-Token' } },
    ],
    configure: (config) => {
      const port = new URL(config.publicUrl!).port;
      hostedBase = `http://127.0.0.1:${port}`;
      config.servers!.push({ name: 'hosted', host: `127.0.0.1:${port}`, path: '/mcp', upstream: { url: hostedDemo.url } });
    },
  });
});

after(async () => {
  await stack?.close();
  await idpEcho?.close();
  await hostedDemo?.close();
});

describe('several servers: routes, hosts and audiences', () => {
  it("logs in to each server, and refuses each server's token at the others", async () => {
    const toolsProvider = new TestOAuthClientProvider({ mode: 'dcr', clientName: 'multi tools' });
    const otherProvider = new TestOAuthClientProvider({ mode: 'dcr', clientName: 'multi other' });
    const tools = await loggedInClient(stack, toolsProvider);
    const other = await loggedInClient(stack, otherProvider, { mcpPath: '/other' });
    const browser = new Browser({ ca: stack.ca.caPem });
    const hostedProvider = new TestOAuthClientProvider({ mode: 'dcr', clientName: 'multi hosted' });
    let hosted: Client | undefined;
    try {
      hosted = await connectWithLogin({
        mcpUrl: `${hostedBase}/mcp`,
        provider: hostedProvider,
        fetch: stack.fetch,
        login: async (authorizationUrl) => (await approveAndSignIn(stack, browser, authorizationUrl, hostedProvider.redirectUrl)).url,
      });
      // Each client asked for its own server's resource (from that server's PRM).
      assert.equal(toolsProvider.authorizationUrl?.searchParams.get('resource'), `${stack.issuer}/mcp`);
      assert.equal(otherProvider.authorizationUrl?.searchParams.get('resource'), `${stack.issuer}/other`);
      assert.equal(hostedProvider.authorizationUrl?.searchParams.get('resource'), `${hostedBase}/mcp`);
      for (const client of [tools, other, hosted]) {
        assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { text: 'hi' } })), 'hi');
      }

      const tokenOf = (provider: TestOAuthClientProvider): string => provider.savedTokens.at(-1)!.access_token;
      const init = JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
      });
      const attempt = (url: string, token: string) =>
        fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${token}` },
          body: init,
        });
      for (const [url, provider] of [
        [`${stack.issuer}/other`, toolsProvider],
        [`${hostedBase}/mcp`, toolsProvider],
        [`${stack.issuer}/mcp`, otherProvider],
        [`${stack.issuer}/mcp`, hostedProvider],
      ] as const) {
        const res = await attempt(url, tokenOf(provider));
        assert.equal(res.status, 401, url);
        assert.match(
          String(res.headers.get('www-authenticate')),
          /error="invalid_token", error_description="The access token was not issued for this MCP server\."/,
        );
        await res.arrayBuffer();
      }
      const own = await attempt(`${hostedBase}/mcp`, tokenOf(hostedProvider));
      assert.equal(own.status, 200);
      await own.arrayBuffer();

      // Unknown routes: a plain 404, not a challenge.
      const unknown = await fetch(`${stack.issuer}/not-a-server`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: init });
      assert.equal(unknown.status, 404);
      assert.equal(unknown.headers.get('www-authenticate'), null);
    } finally {
      await tools.close();
      await other.close();
      await hosted?.close();
    }
  });
});

describe("the user's IdP access token, handed over in a header", () => {
  it("reaches the upstream as the user's own, refreshed IdP token; a refused refresh is a 401, an IdP failure a 503", async () => {
    const provider = new TestOAuthClientProvider({ mode: 'dcr', clientName: 'idp header' });
    const client = await loggedInClient(stack, provider, { mcpPath: '/idp-echo' });
    try {
      const first = JSON.parse(textOf(await client.callTool({ name: 'idp_token', arguments: {} }))) as { token: string; user: string };
      const second = JSON.parse(textOf(await client.callTool({ name: 'idp_token', arguments: {} }))) as { token: string; user: string };
      assert.equal(typeof first.token, 'string');
      assert.notEqual(first.token, provider.savedTokens.at(-1)!.access_token, "never the gateway's own token");
      // Both are alice's tokens at the IdP, and the second is a refreshed one (30 s tokens are
      // refreshed on use).
      assert.equal(await userinfoSub(stack, first.token), 'alice');
      assert.equal(await userinfoSub(stack, second.token), 'alice');
      assert.notEqual(first.token, second.token);
      assert.ok(logLines.some((line) => line.includes('"event":"idp_token.refreshed"')));

      // A client-sent copy of the header never reaches the upstream.
      const init = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'idp_token', arguments: {} } });
      const headers = {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${provider.savedTokens.at(-1)!.access_token}`,
        'mcp-protocol-version': '2025-06-18',
      };
      const forged = await fetch(`${stack.issuer}/idp-echo`, { method: 'POST', headers: { ...headers, 'x-idp-token': 'forged' }, body: init });
      const forgedBody = (await forged.json()) as { result: { content: Array<{ text: string }> } };
      assert.notEqual(JSON.parse(forgedBody.result.content[0]!.text).token, 'forged');

      // The IdP's token endpoint fails: 503 with a JSON-RPC error, logged.
      stack.idp.failWith(503, '/token');
      try {
        const unavailable = await fetch(`${stack.issuer}/idp-echo`, { method: 'POST', headers, body: init });
        assert.equal(unavailable.status, 503);
        assert.equal(((await unavailable.json()) as { error: { code: number } }).error.code, -32000);
        assert.ok(logLines.some((line) => line.includes('"event":"idp_token.unavailable"')));
      } finally {
        stack.idp.failWith(undefined, '/token');
      }

      // The IdP refuses the refresh, the user must sign in again. The IdP's own clock decides when its
      // refresh token expires, so rather than wait for that, the grant ends by revocation at the IdP (an
      // administrator removing the app's access): the gateway meets the same invalid_grant.
      const idpRefreshToken = (await storedIdpTokens(stack, 'corp:alice'))?.refreshToken;
      assert.ok(idpRefreshToken, 'the gateway holds the IdP refresh token');
      await revokeAtIdp(stack.idp, idpRefreshToken, stack.fetch);
      const refused = await fetch(`${stack.issuer}/idp-echo`, { method: 'POST', headers, body: init });
      assert.equal(refused.status, 401);
      const challenge = String(refused.headers.get('www-authenticate'));
      assert.match(challenge, /^Bearer error="invalid_token", error_description="Your session at the identity provider has ended; sign in again\."/);
      assert.match(challenge, new RegExp(`resource_metadata="${stack.issuer}/.well-known/oauth-protected-resource/idp-echo"`));
      await refused.arrayBuffer();
      assert.ok(logLines.some((line) => line.includes('"event":"idp_token.reauthentication_required"')));
      assert.ok(
        logLines.some((line) => line.includes('"event":"idp_token.refresh_refused"') && line.includes('invalid_grant')),
        'the IdP refused the refresh',
      );

      // The SDK client meets the 401, refreshes, gets invalid_grant and starts a new login (without the
      // refusal it refreshed successfully, met the same 401 and gave up).
      const loginsBefore = provider.authorizationUrls.length;
      await assert.rejects(client.callTool({ name: 'idp_token', arguments: {} }), (error: unknown) => error instanceof UnauthorizedError);
      assert.equal(provider.authorizationUrls.length, loginsBefore + 1, 'the SDK asked for a new authorization');

      // On the wire: refreshing the gateway token no longer helps.
      const refresh = await tokenRequest(stack, {
        grant_type: 'refresh_token',
        refresh_token: String(provider.savedTokens.at(-1)!.refresh_token),
        client_id: String(provider.clientInformation()?.client_id),
      });
      assert.equal(refresh.status, 400);
      assert.equal(refresh.body.error, 'invalid_grant');

      // A new login brings the hand-over back.
      const againProvider = new TestOAuthClientProvider({ mode: 'dcr', clientName: 'idp header again' });
      const again = await loggedInClient(stack, againProvider, { mcpPath: '/idp-echo' });
      try {
        const after = JSON.parse(textOf(await again.callTool({ name: 'idp_token', arguments: {} }))) as { token: string };
        assert.equal(await userinfoSub(stack, after.token), 'alice');
      } finally {
        await again.close();
      }
    } finally {
      await client.close();
    }
  });
});
