/**
 * What every reverse proxy in front of a forward-auth server must get right, checked the same way for
 * each real proxy (nginx, Caddy): the 401 challenge reaches the client once and names metadata about
 * the proxy's URL; the SDK client logs in through the gateway and reaches the MCP server as the user,
 * never as the identity it forged; SSE progress streams through unbuffered.
 */
import assert from 'node:assert/strict';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { Browser } from '../support/browser.ts';
import { connectWithLogin, TestOAuthClientProvider } from '../support/mcp-client.ts';
import { mcpInitialize } from './oauth.ts';
import { approveAndSignIn, loggedInClient, type Stack } from './stack.ts';

/**
 * The gateway's entry for an MCP server behind a reverse proxy: its resource is the proxy's URL,
 * traffic goes through the proxy, and every identity header is handed over.
 */
export function forwardAuthServer(name: string, path: string, resource: string) {
  return {
    name,
    path,
    resource,
    upstream: { forwardAuth: true as const },
    // Two scopes: a token holding one of them is how the tests reach 403 insufficient_scope.
    scopes: ['mcp:tools', 'mcp:admin'],
    identityHeaders: { subject: 'x-user-id', email: 'x-user-email', name: 'x-user-name', groups: 'x-user-groups' },
  };
}

/** An anonymous request through the proxy: exactly one challenge, and the metadata it names. */
export async function checkChallengeThroughProxy(stack: Stack, proxyUrl: string, resource: string, serverName: string): Promise<void> {
  const response = await mcpInitialize(resource);
  assert.equal(response.status, 401);
  const expectedMetadata = `${stack.issuer}/.well-known/oauth-protected-resource/forward-auth/${serverName}`;
  // Exact value: a duplicated challenge (nginx copies a 401's by itself) would be joined in with ", ".
  assert.equal(response.headers.get('www-authenticate'), `Bearer resource_metadata="${expectedMetadata}", scope="mcp:tools mcp:admin"`);
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
  assert.equal(((await response.json()) as { error: string }).error, 'invalid_token');

  // The document the challenge names: on the gateway, about the proxy's URL (RFC 9728 §3.3).
  const metadata = (await (await fetch(expectedMetadata)).json()) as Record<string, unknown>;
  assert.equal(metadata.resource, resource);
  assert.deepEqual(metadata.authorization_servers, [stack.issuer]);
  // The well-known path routed through the proxy with the original Host: the same document at the
  // RFC 9728 §3.1 URL on the proxy's origin.
  const probed = await fetch(`${proxyUrl}/.well-known/oauth-protected-resource/mcp`);
  assert.equal(probed.status, 200);
  assert.equal(((await probed.json()) as Record<string, unknown>).resource, resource);
}

/** Forged identity headers a client adds to every request; the proxy must replace them. */
export const FORGED_IDENTITY = { 'x-user-email': 'mallory@example.com', 'x-user-id': 'corp:mallory', 'x-user-groups': 'admins' };

/** The SDK client logs in through the gateway (alice) and connects to the MCP server through the proxy. */
export async function connectThroughProxy(
  stack: Stack,
  resource: string,
  proxyName: string,
  forged: Record<string, string> = FORGED_IDENTITY,
): Promise<Client> {
  const provider = new TestOAuthClientProvider({ mode: 'dcr', clientName: `${proxyName} forward-auth client` });
  const browser = new Browser({ ca: stack.ca.caPem });
  const forging: typeof fetch = (input, init) => {
    const headers = new Headers(init?.headers);
    for (const [name, value] of Object.entries(forged)) headers.set(name, value);
    return stack.fetch(input, { ...init, headers });
  };
  return connectWithLogin({
    mcpUrl: resource,
    provider,
    fetch: forging,
    login: async (authorizationUrl) => {
      assert.equal(authorizationUrl.origin, stack.issuer, 'the gateway is the authorization server');
      assert.equal(authorizationUrl.searchParams.get('resource'), resource, `RFC 8707 resource is the ${proxyName} URL`);
      return (await approveAndSignIn(stack, browser, authorizationUrl, provider.redirectUrl)).url;
    },
  });
}

/** The MCP server sees alice as the gateway vouched for her, and no token. */
export async function checkIdentityAtServer(client: Client, proxyName: string): Promise<void> {
  const result = await client.callTool({ name: 'whoami', arguments: {} });
  const report = result.structuredContent as { identity: Record<string, string>; authorizationHeaderPresent: boolean };
  assert.equal(report.identity['x-user-email'], 'alice@example.com');
  assert.match(report.identity['x-user-id'] ?? '', /^corp:/);
  assert.notEqual(report.identity['x-user-id'], 'corp:mallory');
  assert.equal(report.identity['x-user-name'], 'Alice Example');
  assert.equal(report.identity['x-user-groups'], 'engineering');
  assert.equal(report.authorizationHeaderPresent, false, `${proxyName} does not pass the token on`);
}

/** SSE through the proxy, unbuffered: progress arrives while the tool is still running. */
export async function checkProgressStreams(client: Client): Promise<void> {
  const progressAt: number[] = [];
  const started = Date.now();
  const counted = await client.callTool({ name: 'slow_count', arguments: { count: 4, intervalMs: 300 } }, undefined, {
    onprogress: () => progressAt.push(Date.now() - started),
  });
  const finishedAt = Date.now() - started;
  assert.deepEqual(counted.content, [{ type: 'text', text: 'Counted to 4.' }]);
  assert.equal(progressAt.length, 4);
  assert.ok(progressAt[0]! < finishedAt - 600, `first progress at ${progressAt[0]} ms, result at ${finishedAt} ms: the stream was buffered`);
}

/**
 * Audience binding across the proxy: a token for the gateway's own /mcp is refused by the proxy, and
 * the proxied server's token (bob's) opens only the proxy URL. Returns that token for further checks.
 */
export async function checkAudienceAcrossProxy(stack: Stack, resource: string, proxyName: string): Promise<string> {
  const provider = new TestOAuthClientProvider({ mode: 'dcr', clientName: 'gateway /mcp client' });
  const client = await loggedInClient(stack, provider);
  await client.close();
  const otherToken = provider.tokens()?.access_token;
  assert.ok(otherToken);
  const refused = await mcpInitialize(resource, otherToken);
  assert.equal(refused.status, 401);
  assert.match(refused.headers.get('www-authenticate') ?? '', /^Bearer error="invalid_token"/);

  const proxyProvider = new TestOAuthClientProvider({ mode: 'dcr', clientName: `${proxyName} client` });
  const browser = new Browser({ ca: stack.ca.caPem });
  const proxyClient = await connectWithLogin({
    mcpUrl: resource,
    provider: proxyProvider,
    fetch: stack.fetch,
    login: async (url) => (await approveAndSignIn(stack, browser, url, proxyProvider.redirectUrl, 'bob')).url,
  });
  await proxyClient.close();
  const proxyToken = proxyProvider.tokens()?.access_token;
  assert.ok(proxyToken);
  assert.equal((await mcpInitialize(stack.mcpUrl(), proxyToken)).status, 401, `the ${proxyName} token does not open the gateway's own /mcp`);
  assert.equal((await mcpInitialize(resource, proxyToken)).status, 200, `and it does open the ${proxyName} URL`);
  return proxyToken;
}
