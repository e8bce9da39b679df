/**
 * The gateway on Redis storage while Redis is down: every endpoint that needs storage answers a clear
 * 503 at once (OAuth: `temporarily_unavailable` with Retry-After, RFC 6749 §4.1.2.1; MCP: a JSON-RPC
 * error), never a 500 or a stack trace, and never hangs; tokens already checked keep working; and once
 * Redis is back (same data directory, `appendfsync always`) everything issued before still works.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Browser } from '../support/browser.ts';
import { type RunningRedis, redisUnavailable, startRedis } from '../support/redis.ts';
import { authorizeAndExchange, mcpInitialize, pkceAuthorizeUrl, type Registered, registerPublicClient, tokenRequest } from './oauth.ts';
import { type Stack, startStack } from './stack.ts';

const COMMAND_TIMEOUT_MS = 500;

/** A 503 that says "retry later" and nothing internal. */
async function assertUnavailable(response: Response, what: string): Promise<string> {
  const body = await response.text();
  assert.equal(response.status, 503, `${what}: ${response.status} ${body.slice(0, 300)}`);
  assert.equal(response.headers.get('retry-after'), '5', `${what}: Retry-After`);
  assert.doesNotMatch(body, /\bat \S+:\d+:\d+|ERR_STORAGE|Redis|ECONNREFUSED|server_error/i, `${what}: nothing internal`);
  return body;
}

describe('gateway on Redis while Redis is down', { skip: redisUnavailable() ?? false }, () => {
  let redis: RunningRedis;
  let stack: Stack;
  before(async () => {
    redis = await startRedis();
    stack = await startStack({
      configure: (config) => {
        config.storage = { type: 'redis', url: redis.url, keyPrefix: 'outage:', commandTimeoutMs: COMMAND_TIMEOUT_MS, connectTimeoutMs: 1000 };
        config.secrets = { encryptionKeys: [randomBytes(32).toString('base64')] };
      },
    });
  });
  after(async () => {
    await stack?.close();
    await redis?.close();
  });

  test('503 temporarily_unavailable on OAuth endpoints, a JSON-RPC 503 on MCP, and everything issued survives', async () => {
    const client: Registered = await registerPublicClient(stack);
    const browser = new Browser({ ca: stack.ca.caPem });
    const first = await authorizeAndExchange(stack, browser, client);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const seenToken = String(first.body.access_token);
    const warm = await mcpInitialize(stack.mcpUrl(), seenToken);
    assert.equal(warm.status, 200);
    await warm.body?.cancel();
    // A second login: its access token has never been checked, so its user is not cached yet.
    const second = await authorizeAndExchange(stack, new Browser({ ca: stack.ca.caPem }), client);
    assert.equal(second.status, 200, JSON.stringify(second.body));
    const refreshToken = String(second.body.refresh_token);

    await redis.kill();

    const started = performance.now();
    const refresh = await tokenRequest(stack, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: client.client_id });
    assert.equal(refresh.status, 503, JSON.stringify(refresh.body));
    assert.deepEqual(refresh.body.error, 'temporarily_unavailable');
    assert.equal(refresh.headers.get('retry-after'), '5');

    const registration = await fetch(`${stack.issuer}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: 'During outage', redirect_uris: ['http://127.0.0.1:5555/cb'], token_endpoint_auth_method: 'none' }),
    });
    assert.equal(JSON.parse(await assertUnavailable(registration, 'POST /register')).error, 'temporarily_unavailable');

    const authorize = await fetch(pkceAuthorizeUrl(stack, client, { state: 'outage', scope: 'mcp:tools', resource: stack.mcpUrl() }).url, {
      redirect: 'manual',
    });
    // The client cannot be loaded, so nothing is redirected to it: the error page, with the 503.
    assert.match(await assertUnavailable(authorize, 'GET /authorize'), /temporarily_unavailable|try again/i);

    // The gateway's own handlers (the IdP callback reads the pending login from storage).
    const callback = await fetch(`${stack.issuer}/callback?state=some-state&code=some-code`, { redirect: 'manual' });
    assert.equal(JSON.parse(await assertUnavailable(callback, 'GET /callback')).error, 'temporarily_unavailable');

    // MCP: a token never seen needs its user read from storage: JSON-RPC error with 503.
    const unseen = await mcpInitialize(stack.mcpUrl(), String(second.body.access_token));
    const rpc = JSON.parse(await assertUnavailable(unseen, 'POST /mcp with an unseen token')) as { jsonrpc: string; error: { code: number } };
    assert.equal(rpc.jsonrpc, '2.0');
    assert.equal(rpc.error.code, -32000);
    // A token already checked needs no storage: MCP traffic goes on through the outage.
    const seen = await mcpInitialize(stack.mcpUrl(), seenToken);
    assert.equal(seen.status, 200);
    await seen.body?.cancel();
    assert.ok(performance.now() - started < 10 * COMMAND_TIMEOUT_MS, 'every answer came without waiting for Redis');

    await redis.restart();
    const deadline = Date.now() + 15_000;
    let after = await tokenRequest(stack, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: client.client_id });
    while (after.status === 503 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100)); // the client reconnecting, with a deadline
      after = await tokenRequest(stack, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: client.client_id });
    }
    assert.equal(after.status, 200, `the refresh token issued before the crash still works: ${JSON.stringify(after.body)}`);
    const fresh = await mcpInitialize(stack.mcpUrl(), String(after.body.access_token));
    assert.equal(fresh.status, 200);
    await fresh.body?.cancel();
  });
});
