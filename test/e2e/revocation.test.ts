/**
 * Revocation that reaches access tokens (docs/tokens.md, "Revocation"): a revoked grant's JWTs are
 * refused by the MCP endpoint and by forward-auth at once on the replica that revoked it, and on a
 * second replica sharing the store after its next poll (driven here with `sync()`, never a sleep);
 * /revoke accepts access tokens; /introspect answers the configured resource servers.
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type RunningGateway, startGateway } from '../../src/app.ts';
import { configSchema } from '../../src/config/schema.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Browser } from '../support/browser.ts';
import { TestClock } from '../support/clock.ts';
import { TestOAuthClientProvider } from '../support/mcp-client.ts';
import { freePort } from '../support/ports.ts';
import { forwardAuthServer } from './forward-auth-checks.ts';
import { authorizeAndExchange, inspectAccessToken, mcpInitialize, type Registered, registerPublicClient, revokeToken, tokenRequest } from './oauth.ts';
import { loggedInClient, type Stack, startStack } from './stack.ts';

const FORWARD_AUTH_RESOURCE = 'https://mcp.example.com/fa/mcp';
const INTROSPECTOR = { clientId: 'docs-server', clientSecret: 'introspection-secret-0123456789-abcdef' };

/** The MCP endpoint's verdict on a token: the status, and the challenge when refused. */
async function mcpStatus(url: string, token: string): Promise<{ status: number; challenge: string | null }> {
  const response = await mcpInitialize(url, token);
  await response.body?.cancel();
  return { status: response.status, challenge: response.headers.get('www-authenticate') };
}

/** A forward-auth check as Traefik sends it, for a request to the forward-auth server's URL. */
async function forwardAuthStatus(stack: Stack, token: string): Promise<number> {
  const response = await fetch(`${stack.issuer}/forward-auth/fa`, {
    headers: {
      authorization: `Bearer ${token}`,
      'x-forwarded-method': 'POST',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'mcp.example.com',
      'x-forwarded-uri': '/fa/mcp',
    },
  });
  await response.body?.cancel();
  return response.status;
}

async function introspect(stack: Stack, token: string, credentials: { clientId: string; clientSecret: string } = INTROSPECTOR): Promise<Response> {
  return fetch(`${stack.issuer}/introspect`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${credentials.clientId}:${credentials.clientSecret}`).toString('base64')}`,
    },
    body: new URLSearchParams({ token }),
  });
}

function assertRevokedChallenge(result: { status: number; challenge: string | null }, stack: Stack): void {
  assert.equal(result.status, 401);
  assert.match(result.challenge ?? '', /^Bearer /);
  assert.match(result.challenge ?? '', /error="invalid_token"/);
  assert.match(result.challenge ?? '', /error_description="The access token has been revoked."/);
  assert.match(result.challenge ?? '', new RegExp(`resource_metadata="${stack.issuer}/.well-known/oauth-protected-resource/mcp"`));
}

describe('revocation reaches access tokens', () => {
  let stack: Stack;
  let replica: RunningGateway;
  let replicaUrl: string;
  const clock = new TestClock();

  before(async () => {
    stack = await startStack({
      clock,
      extraServers: [forwardAuthServer('fa', '/fa/mcp', FORWARD_AUTH_RESOURCE)],
      configure: (config) => {
        // Long enough that no poll happens by itself during a test: the tests drive `sync()`.
        config.tokens = { revocationPollInterval: 60 };
        config.introspection = { clients: [INTROSPECTOR] };
      },
    });
    // A second replica on the same store (the SQLite file), as behind a load balancer.
    const port = await freePort();
    replica = await startGateway(configSchema.parse({ ...stack.config, listen: { host: '127.0.0.1', port } }), {
      logger: createLogger('silent'),
      announce: () => {},
    });
    replicaUrl = `http://127.0.0.1:${port}`;
  });
  after(async () => {
    await replica?.close();
    await stack?.close();
  });

  async function login(client?: Registered, resource?: string, scope?: string) {
    const owner = client ?? (await registerPublicClient(stack));
    const tokens = await authorizeAndExchange(stack, new Browser({ ca: stack.ca.caPem }), owner, {
      ...(resource ? { resource } : {}),
      ...(scope ? { scope } : {}),
    });
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    return { client: owner, access: String(tokens.body.access_token), refresh: String(tokens.body.refresh_token) };
  }

  test('access tokens name their grant', async () => {
    const { access } = await login();
    assert.equal(typeof inspectAccessToken(access).claims.grant_id, 'string');
  });

  test('revoking the refresh token (RFC 7009) stops its access token here at once, and at the other replica after its next poll', async () => {
    const { client, access, refresh } = await login();
    // Seen (and cached, user read) by both replicas before the revocation.
    assert.equal((await mcpStatus(stack.mcpUrl(), access)).status, 200);
    assert.equal((await mcpStatus(`${replicaUrl}/mcp`, access)).status, 200);

    assert.equal((await revokeToken(stack, refresh, client.client_id)).status, 200);

    assertRevokedChallenge(await mcpStatus(stack.mcpUrl(), access), stack);
    // The other replica has not polled yet: no storage read per request, its cache still answers.
    assert.equal((await mcpStatus(`${replicaUrl}/mcp`, access)).status, 200);
    await replica.revocations.sync();
    assertRevokedChallenge(await mcpStatus(`${replicaUrl}/mcp`, access), stack);
  });

  test('an SDK client logged in for real loses access the moment its grant is revoked', async () => {
    const provider = new TestOAuthClientProvider({ mode: 'dcr', clientName: 'revoked SDK client' });
    const client = await loggedInClient(stack, provider);
    try {
      await client.listTools();
      const tokens = provider.tokens();
      assert.ok(tokens?.refresh_token);
      assert.equal((await revokeToken(stack, tokens.refresh_token, String(provider.clientInformation()?.client_id))).status, 200);
      assertRevokedChallenge(await mcpStatus(stack.mcpUrl(), tokens.access_token), stack);
      await assert.rejects(client.listTools());
    } finally {
      await client.close();
    }
  });

  test('refresh-token reuse revokes the grant: the access token of the newest refresh is refused too', async () => {
    const { client, refresh } = await login();
    const rotated = await tokenRequest(stack, { grant_type: 'refresh_token', refresh_token: refresh, client_id: client.client_id });
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    const newest = String(rotated.body.access_token);
    assert.equal((await mcpStatus(stack.mcpUrl(), newest)).status, 200);

    // Past the reuse grace period (docs/tokens.md), a second presentation is reuse (RFC 9700 §4.14.2).
    clock.advance((configSchema.parse(stack.config).tokens.refreshReuseGraceSeconds + 1) * 1000);
    const replay = await tokenRequest(stack, { grant_type: 'refresh_token', refresh_token: refresh, client_id: client.client_id });
    assert.equal(replay.body.error, 'invalid_grant');
    assertRevokedChallenge(await mcpStatus(stack.mcpUrl(), newest), stack);
    await replica.revocations.sync();
    assertRevokedChallenge(await mcpStatus(`${replicaUrl}/mcp`, newest), stack);
  });

  test('/revoke takes an access token (with or without the hint): its grant ends, refresh token included', async () => {
    for (const hint of [undefined, 'access_token']) {
      const { client, access, refresh } = await login();
      assert.equal((await mcpStatus(stack.mcpUrl(), access)).status, 200);
      const response = await fetch(`${stack.issuer}/revoke`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token: access, client_id: client.client_id, ...(hint ? { token_type_hint: hint } : {}) }),
      });
      assert.equal(response.status, 200, await response.text());
      assertRevokedChallenge(await mcpStatus(stack.mcpUrl(), access), stack);
      const refreshed = await tokenRequest(stack, { grant_type: 'refresh_token', refresh_token: refresh, client_id: client.client_id });
      assert.equal(refreshed.body.error, 'invalid_grant', 'the refresh token died with the grant');
    }
  });

  test('/revoke by another client, or of a token that is not ours, answers 200 and revokes nothing (no oracle)', async () => {
    const { access } = await login();
    const stranger = await registerPublicClient(stack);
    const response = await revokeToken(stack, access, stranger.client_id);
    assert.equal(response.status, 200);
    assert.equal((await mcpStatus(stack.mcpUrl(), access)).status, 200, 'still valid');

    const forged = await revokeToken(stack, `${access.slice(0, -4)}AAAA`, stranger.client_id);
    assert.equal(forged.status, 200);
    assert.equal((await mcpStatus(stack.mcpUrl(), access)).status, 200, 'still valid');
  });

  test('forward-auth refuses a revoked token', async () => {
    // Both of the forward-auth server's scopes, so the only refusal left to see is the revocation's.
    const { client, access, refresh } = await login(undefined, FORWARD_AUTH_RESOURCE, 'mcp:tools mcp:admin');
    assert.equal(await forwardAuthStatus(stack, access), 200);
    await revokeToken(stack, refresh, client.client_id);
    assert.equal(await forwardAuthStatus(stack, access), 401);
  });

  test('introspection: the configured resource server learns whether a token is active, with the RFC 7662 fields', async () => {
    const { client, access, refresh } = await login();
    const active = await introspect(stack, access);
    assert.equal(active.status, 200);
    assert.equal(active.headers.get('cache-control'), 'no-store');
    const body = (await active.json()) as Record<string, unknown>;
    const claims = inspectAccessToken(access).claims;
    assert.deepEqual(body, {
      active: true,
      iss: stack.issuer,
      sub: 'corp:alice',
      client_id: client.client_id,
      aud: stack.mcpUrl(),
      scope: 'mcp:tools',
      exp: claims.exp,
      iat: claims.iat,
      jti: claims.jti,
      token_type: 'Bearer',
    });

    // Another client (even the token's own) learns nothing.
    const stranger = await fetch(`${stack.issuer}/introspect`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: access, client_id: client.client_id }),
    });
    assert.deepEqual(await stranger.json(), { active: false });
    // Wrong secret: the client is not authenticated at all.
    const wrongSecret = await introspect(stack, access, { ...INTROSPECTOR, clientSecret: 'x'.repeat(40) });
    assert.equal(wrongSecret.status, 401);
    // A forged signature, and a refresh token, are inactive.
    assert.deepEqual(await (await introspect(stack, `${access.slice(0, -4)}AAAA`)).json(), { active: false });
    assert.deepEqual(await (await introspect(stack, refresh)).json(), { active: false });

    await revokeToken(stack, refresh, client.client_id);
    assert.deepEqual(await (await introspect(stack, access)).json(), { active: false }, 'revoked');
  });

  test('the discovery metadata lists the introspection endpoint when introspection clients are configured', async () => {
    const metadata = (await (await fetch(`${stack.issuer}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    assert.equal(metadata.introspection_endpoint, `${stack.issuer}/introspect`);
    assert.equal(metadata.revocation_endpoint, `${stack.issuer}/revoke`);
  });

  test('revoking every grant of a user (the function an admin command calls) reaches the other replica through the store', async () => {
    const first = await login();
    const second = await login();
    const revoked = await replica.grants.revokeUserGrants('corp:alice');
    assert.ok(revoked.length >= 2);
    assertRevokedChallenge(await mcpStatus(`${replicaUrl}/mcp`, first.access), stack);
    await stack.gateway.revocations.sync();
    assertRevokedChallenge(await mcpStatus(stack.mcpUrl(), first.access), stack);
    assertRevokedChallenge(await mcpStatus(stack.mcpUrl(), second.access), stack);
  });
});

describe('introspection is off by default', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    await stack?.close();
  });

  test('no introspection_endpoint in the metadata, and /introspect is not served', async () => {
    const metadata = (await (await fetch(`${stack.issuer}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    assert.equal(metadata.introspection_endpoint, undefined);
    const response = await introspect(stack, 'anything');
    assert.equal(response.status, 404);
  });
});

describe('a refresh the access rules refuse revokes the grant', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({
      extraServers: [{ name: 'restricted', path: '/restricted', upstream: { url: 'demo' }, scopes: ['mcp:tools'], access: { groups: ['engineering'] } }],
    });
  });
  after(async () => {
    await stack?.close();
  });

  test('the access token issued before the rules changed stops at the refused refresh, not at its expiry', async () => {
    const client = await registerPublicClient(stack);
    const resource = stack.mcpUrl('/restricted');
    const tokens = await authorizeAndExchange(stack, new Browser({ ca: stack.ca.caPem }), client, { resource });
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    const access = String(tokens.body.access_token);
    assert.equal((await mcpStatus(resource, access)).status, 200);

    const restricted = stack.config.servers?.find((server) => server.name === 'restricted');
    assert.ok(restricted);
    restricted.access = { groups: ['nobody-yet'] };
    await stack.restartGateway();
    // The rules are checked at refresh, so the token still works until the client refreshes.
    assert.equal((await mcpStatus(resource, access)).status, 200);
    const refused = await tokenRequest(stack, {
      grant_type: 'refresh_token',
      refresh_token: String(tokens.body.refresh_token),
      client_id: client.client_id,
      resource,
    });
    assert.equal(refused.body.error, 'invalid_grant');
    const afterRefusal = await mcpStatus(resource, access);
    assert.equal(afterRefusal.status, 401);
    assert.match(afterRefusal.challenge ?? '', /error="invalid_token"/);
  });
});
