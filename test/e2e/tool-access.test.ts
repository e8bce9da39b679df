/**
 * Tool-level authorization (`servers[].toolAccess`, docs/policy.md) and sessions bound to their owner,
 * through the whole gateway with the official SDK client: the demo server over Streamable HTTP (SSE
 * answers) and @modelcontextprotocol/server-everything as a stdio server (JSON answers from the bridge).
 *
 * - lists filtered per person (groups) and per token (scopes); a forbidden call refused with a JSON-RPC
 *   error, a call a wider scope would allow with the MCP step-up challenge;
 * - the SDK client following the step-up: 403 `insufficient_scope` → a new authorization asking for the
 *   wider scope → consent → the call succeeds;
 * - the person unticking that scope on the consent page (clicked in Chromium): fewer scopes granted;
 * - a session id used with another user's or another client's token: 404, for HTTP and stdio servers.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { Browser } from '../support/browser.ts';
import { findChromium, launchChromium, openPage } from '../support/chromium.ts';
import { TestOAuthClientProvider } from '../support/mcp-client.ts';
import { DEFAULT_PASSWORD } from '../support/oidc-idp.ts';
import { closeServer, listen } from '../support/ports.ts';
import { approveAndSignIn, loggedInClient, type Stack, startStack, type USERS } from './stack.ts';

const EVERYTHING = new URL('../../node_modules/@modelcontextprotocol/server-everything/dist/index.js', import.meta.url).pathname;
const NOT_PERMITTED = -32010;
const SESSION_NOT_FOUND = -32006;

function names(items: readonly { name?: string; uri?: string; uriTemplate?: string }[]): string[] {
  return items.map((item) => item.name ?? item.uri ?? item.uriTemplate ?? '?').sort();
}

function transportOf(client: Client): StreamableHTTPClientTransport {
  return client.transport as StreamableHTTPClientTransport;
}

/** One JSON-RPC POST as a raw client would send it, with any token and session id. */
async function post(url: string, token: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-06-18',
      ...headers,
    },
    body: JSON.stringify(body),
  });
}

describe('tool-level authorization and session owners', { skip: existsSync(EVERYTHING) ? false : 'server-everything is not installed' }, () => {
  let stack: Stack;
  const clients: Client[] = [];

  before(async () => {
    stack = await startStack({
      configure: (config) => {
        const tools = config.servers?.[0];
        assert.ok(tools);
        Object.assign(tools, {
          scopeDescriptions: { 'mcp:tools': 'Use the demo tools', 'tools:identity': 'See the identity the gateway hands to the server' },
          toolAccess: { rules: [{ tools: ['echo', 'slow_count'] }, { tools: ['whoami'], scopes: ['tools:identity'] }] },
        });
        config.servers?.push({
          name: 'everything',
          path: '/everything',
          scopes: ['mcp:everything'],
          upstream: { stdio: { command: process.execPath, args: [EVERYTHING, 'stdio'], stopGracePeriod: 1 } },
          toolAccess: {
            rules: [
              { tools: ['echo', 'get-sum'], prompts: ['simple-prompt'] },
              // Reading the server's environment: engineering only (alice, not bob).
              { tools: ['get-env'], prompts: ['args-*'], access: { groups: ['engineering'] } },
              { resources: ['demo://resource/static/document/*'], scopes: ['docs:read'] },
            ],
          },
        });
      },
    });
  });

  after(async () => {
    for (const client of clients) await client.close().catch(() => {});
    await stack?.close();
  });

  async function connect(path: string, username: keyof typeof USERS, options: { keepRefreshTokens?: boolean } = {}) {
    const provider = new TestOAuthClientProvider({ mode: 'dcr', clientName: `tool-access ${username}`, ...options });
    const client = await loggedInClient(stack, provider, { mcpPath: path, username });
    clients.push(client);
    return { client, provider, token: () => provider.tokens()?.access_token ?? '' };
  }

  test('lists are filtered to what the person and the token may use (stdio server, JSON answers)', async () => {
    const alice = await connect('/everything', 'alice');
    const bob = await connect('/everything', 'bob');
    assert.deepEqual(names((await alice.client.listTools()).tools), ['echo', 'get-env', 'get-sum']);
    assert.deepEqual(names((await bob.client.listTools()).tools), ['echo', 'get-sum']);
    assert.deepEqual(names((await alice.client.listPrompts()).prompts), ['args-prompt', 'simple-prompt']);
    assert.deepEqual(names((await bob.client.listPrompts()).prompts), ['simple-prompt']);
    // The documents need docs:read, which neither token holds; templates match no rule.
    assert.deepEqual((await alice.client.listResources()).resources, []);
    assert.deepEqual((await alice.client.listResourceTemplates()).resourceTemplates, []);
    // Allowed items still work through the filter.
    const sum = await alice.client.callTool({ name: 'get-sum', arguments: { a: 2, b: 3 } });
    assert.match(JSON.stringify(sum.content), /5/);
  });

  test('a forbidden call is refused with a JSON-RPC error when no scope would help', async () => {
    const bob = await connect('/everything', 'bob');
    await assert.rejects(bob.client.callTool({ name: 'get-env', arguments: {} }), (error: unknown) => {
      assert.ok(error instanceof McpError, String(error));
      assert.equal(error.code, NOT_PERMITTED);
      return true;
    });
    await assert.rejects(
      bob.client.getPrompt({ name: 'args-prompt', arguments: { city: 'x' } }),
      (error: unknown) => error instanceof McpError && error.code === NOT_PERMITTED,
    );
    // No rule names it: denied for everyone.
    await assert.rejects(
      bob.client.callTool({ name: 'gzip-file-as-resource', arguments: {} }),
      (error: unknown) => error instanceof McpError && error.code === NOT_PERMITTED,
    );
  });

  test('a call a wider scope would allow gets the step-up challenge; headers that disagree with the body are refused', async () => {
    const alice = await connect('/everything', 'alice');
    const url = stack.mcpUrl('/everything');
    const session = { 'mcp-session-id': transportOf(alice.client).sessionId ?? '' };
    const read = { jsonrpc: '2.0', id: 7, method: 'resources/read', params: { uri: 'demo://resource/static/document/features.md' } };
    const refused = await post(url, alice.token(), read, session);
    assert.equal(refused.status, 403);
    const challenge = refused.headers.get('www-authenticate') ?? '';
    assert.match(challenge, /^Bearer error="insufficient_scope", scope="mcp:everything docs:read", resource_metadata="[^"]+\/everything"$/);
    assert.equal(((await refused.json()) as { error: string }).error, 'insufficient_scope');

    const call = { jsonrpc: '2.0', id: 8, method: 'tools/call', params: { name: 'get-sum', arguments: { a: 1, b: 1 } } };
    const mismatch = await post(url, alice.token(), call, { ...session, 'mcp-method': 'tools/call', 'mcp-name': 'echo' });
    assert.equal(mismatch.status, 400);
    assert.deepEqual(((await mismatch.json()) as { error: { code: number } }).error.code, -32020);
    const agreeing = await post(url, alice.token(), call, {
      ...session,
      'mcp-method': 'tools/call',
      'mcp-name': `=?base64?${Buffer.from('get-sum').toString('base64')}?=`,
    });
    assert.equal(agreeing.status, 200);

    // A batch with one forbidden member is refused whole: nothing of it reaches the server.
    const batch = await post(
      url,
      alice.token(),
      [
        { jsonrpc: '2.0', id: 1, method: 'tools/list' },
        { ...call, params: { name: 'gzip-file-as-resource' } },
      ],
      session,
    );
    assert.equal(batch.status, 200);
    const answers = (await batch.json()) as { id: number; error?: { code: number }; result?: unknown }[];
    assert.deepEqual(
      answers.map((answer) => [answer.id, answer.error?.code]),
      [
        [1, NOT_PERMITTED],
        [8, NOT_PERMITTED],
      ],
    );
    assert.ok(answers.every((answer) => answer.result === undefined));
  });

  test('the SDK client follows the step-up: 403, a new authorization with the wider scope, then the call succeeds (HTTP server, SSE answers)', async () => {
    // No refresh token: SDK 1.x would refresh first, which cannot widen the scope (typescript-sdk #2255).
    const alice = await connect('/mcp', 'alice', { keepRefreshTokens: false });
    assert.deepEqual(names((await alice.client.listTools()).tools), ['echo', 'slow_count']);
    await assert.rejects(alice.client.callTool({ name: 'whoami', arguments: {} }), UnauthorizedError);
    const stepUp = alice.provider.authorizationUrls.at(-1);
    assert.ok(stepUp && alice.provider.authorizationUrls.length === 2, 'the SDK started a second authorization');
    assert.equal(stepUp.searchParams.get('scope'), 'mcp:tools tools:identity');

    const browser = new Browser({ ca: stack.ca.caPem });
    const redirect = await approveAndSignIn(stack, browser, stepUp, alice.provider.redirectUrl, 'alice');
    const code = redirect.url.searchParams.get('code');
    assert.ok(code, redirect.url.href);
    await transportOf(alice.client).finishAuth(code);
    assert.equal(alice.provider.savedTokens.at(-1)?.scope?.split(' ').sort().join(' '), 'mcp:tools tools:identity');

    const whoami = await alice.client.callTool({ name: 'whoami', arguments: {} });
    assert.match(JSON.stringify(whoami.content), /alice@example\.com/);
    assert.deepEqual(names((await alice.client.listTools()).tools), ['echo', 'slow_count', 'whoami']);
  });

  test("a session id is refused with another user's or another client's token, for HTTP and stdio servers", async () => {
    for (const path of ['/mcp', '/everything']) {
      const alice = await connect(path, 'alice');
      const bob = await connect(path, 'bob');
      const aliceAgain = await connect(path, 'alice');
      const sessionId = transportOf(alice.client).sessionId;
      assert.ok(sessionId, `${path}: the server opened a session`);
      const list = { jsonrpc: '2.0', id: 1, method: 'tools/list' };
      const url = stack.mcpUrl(path);

      const own = await post(url, alice.token(), list, { 'mcp-session-id': sessionId });
      assert.equal(own.status, 200, `${path}: the owner uses the session`);
      await own.body?.cancel();
      for (const [who, stranger] of [
        ['another user', bob],
        ['the same user through another client', aliceAgain],
      ] as const) {
        const ridden = await post(url, stranger.token(), list, { 'mcp-session-id': sessionId });
        assert.equal(ridden.status, 404, `${path}: ${who}`);
        assert.equal(((await ridden.json()) as { error: { code: number } }).error.code, SESSION_NOT_FOUND, `${path}: ${who}`);
      }
      // The owner's session is untouched by the attempts.
      assert.deepEqual(names((await alice.client.listTools()).tools).includes('echo'), true);
    }
  });

  const chromium = findChromium();
  test('the person declines the wider scope on the consent page (clicked in Chromium): the token stays narrow', {
    skip: chromium.path ? false : chromium.reason,
  }, async () => {
    const listener = await startRedirectListener();
    const browser = await launchChromium(chromium.path as string, { trustCertPem: stack.ca.certPem });
    try {
      const provider = new TestOAuthClientProvider({ mode: 'dcr', clientName: 'Chromium step-up', redirectUrl: listener.uri, keepRefreshTokens: false });
      const client = await loggedInClient(stack, provider, { mcpPath: '/mcp', username: 'alice' });
      clients.push(client);
      await assert.rejects(client.callTool({ name: 'whoami', arguments: {} }), UnauthorizedError);
      const stepUp = provider.authorizationUrls.at(-1) as URL;

      const { page, context } = await openPage(browser, { width: 1280, height: 900 });
      try {
        await page.goto(stepUp.href);
        const box = page.getByRole('checkbox', { name: /tools:identity/ });
        assert.ok(await box.isChecked(), 'the optional scope is offered ticked');
        assert.match(await page.locator('ul.scopes').innerText(), /See the identity the gateway hands to the server/);
        assert.equal(await page.getByRole('checkbox', { name: /mcp:tools/ }).count(), 0, 'the scope needed to connect cannot be unticked');
        await box.uncheck();
        await Promise.all([page.waitForURL((url) => url.origin !== stack.issuer), page.getByRole('button', { name: /^Allow/ }).click()]);
        await page.getByLabel('Username').fill('alice');
        await page.getByLabel('Password').fill(DEFAULT_PASSWORD);
        const arrived = listener.next();
        await page.getByRole('button', { name: 'Sign in' }).click();
        const code = (await arrived).searchParams.get('code');
        assert.ok(code);
        await transportOf(client).finishAuth(code);
      } finally {
        await context.close();
      }
      assert.equal(provider.savedTokens.at(-1)?.scope, 'mcp:tools', 'the declined scope was not granted');
      // The same challenge again: the SDK gives up instead of asking the person once more.
      await assert.rejects(client.callTool({ name: 'whoami', arguments: {} }), /403/);
      assert.deepEqual(names((await client.listTools()).tools), ['echo', 'slow_count']);
    } finally {
      await browser.close();
      await listener.close();
    }
  });
});

/** A loopback redirect URI that hands over what arrives (the app's side of RFC 8252 §7.3). */
async function startRedirectListener(): Promise<{ uri: string; next(): Promise<URL>; close(): Promise<void> }> {
  const waiting: ((url: URL) => void)[] = [];
  const server: Server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>App</title><p>Done.</p>');
    waiting.shift()?.(new URL(req.url ?? '/', `http://${req.headers.host}`));
  });
  const port = await listen(server);
  return {
    uri: `http://127.0.0.1:${port}/callback`,
    next: () => new Promise<URL>((resolve) => waiting.push(resolve)),
    close: () => closeServer(server),
  };
}
