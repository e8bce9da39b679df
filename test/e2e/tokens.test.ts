/**
 * What the gateway issues and accepts: token shape and audience, refresh rotation and reuse
 * detection, revocation, restarts, and the challenges a client gets when it has no good token.
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Browser } from '../support/browser.ts';
import { authorizeAndExchange, authorizeUrl, inspectAccessToken, mcpInitialize, pkcePair, registerPublicClient, revokeToken, tokenRequest } from './oauth.ts';
import { type Stack, startStack } from './stack.ts';

describe('tokens issued by the gateway', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({
      extraServers: [
        { name: 'other', path: '/other/mcp', upstream: { url: 'demo' }, scopes: [] },
        { name: 'admin', path: '/admin/mcp', upstream: { url: 'demo' }, scopes: ['mcp:tools', 'mcp:admin'] },
      ],
    });
  });
  after(async () => {
    await stack?.close();
  });

  test('the access token is an ES256 at+jwt bound to exactly the requested MCP server', async () => {
    const client = await registerPublicClient(stack);
    const tokens = await authorizeAndExchange(stack, new Browser({ ca: stack.ca.caPem }), client);
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    assert.equal(tokens.headers.get('cache-control'), 'no-store');
    assert.equal(tokens.body.token_type, 'Bearer');
    assert.ok(typeof tokens.body.refresh_token === 'string', 'refresh token without offline_access');
    const { header, claims } = inspectAccessToken(String(tokens.body.access_token));
    assert.equal(header.alg, 'ES256');
    assert.equal(header.typ, 'at+jwt');
    assert.equal(claims.iss, stack.issuer);
    assert.equal(claims.aud, stack.mcpUrl());
    assert.equal(claims.sub, 'corp:alice');
    assert.equal(claims.client_id, client.client_id);
    assert.equal(claims.scope, 'mcp:tools');
    assert.equal(tokens.body.scope, 'mcp:tools');
    assert.equal((claims.exp as number) - (claims.iat as number), 900, 'fifteen minutes: clients refresh 5 minutes before expiry (docs/clients.md)');
    assert.equal(tokens.body.expires_in, 900);
    // The IdP's tokens stay with the gateway.
    assert.ok(!JSON.stringify(tokens.body).includes('idp'), 'nothing of the IdP in the token response');
  });

  test('a server without scopes: no empty `scope` in the token response, first or refreshed (RFC 6749 §3.3)', async () => {
    const client = await registerPublicClient(stack);
    const resource = stack.mcpUrl('/other/mcp');
    const tokens = await authorizeAndExchange(stack, new Browser({ ca: stack.ca.caPem }), client, { resource, scope: '' });
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    assert.ok(!('scope' in tokens.body), `no scope member: ${JSON.stringify(tokens.body)}`);
    assert.equal(inspectAccessToken(String(tokens.body.access_token)).claims.aud, resource);
    const refreshed = await tokenRequest(stack, {
      grant_type: 'refresh_token',
      refresh_token: String(tokens.body.refresh_token),
      client_id: client.client_id,
      resource,
    });
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    assert.ok(!('scope' in refreshed.body), `no scope member after a refresh: ${JSON.stringify(refreshed.body)}`);
  });

  test('resource: omitted means the default server (never an opaque token); non-canonical forms bind to the canonical URL', async () => {
    const client = await registerPublicClient(stack);
    const browser = new Browser({ ca: stack.ca.caPem });
    const omitted = await authorizeAndExchange(stack, browser, client, { resource: null });
    assert.equal(omitted.status, 200, JSON.stringify(omitted.body));
    assert.equal(inspectAccessToken(String(omitted.body.access_token)).claims.aud, stack.mcpUrl());

    const shouting = `${stack.mcpUrl().replace('http://localhost', 'HTTP://LOCALHOST')}/`;
    const variant = await authorizeAndExchange(stack, new Browser({ ca: stack.ca.caPem }), client, { resource: shouting });
    assert.equal(variant.status, 200, JSON.stringify(variant.body));
    assert.equal(inspectAccessToken(String(variant.body.access_token)).claims.aud, stack.mcpUrl());
    const works = await mcpInitialize(stack.mcpUrl(), String(variant.body.access_token));
    assert.equal(works.status, 200);
    await works.body?.cancel();
  });

  test('a resource that is not an MCP server behind this gateway is refused with invalid_target', async () => {
    const client = await registerPublicClient(stack);
    const browser = new Browser({ ca: stack.ca.caPem });
    const { challenge } = pkcePair();
    const page = await browser.goto(
      authorizeUrl(stack, {
        response_type: 'code',
        client_id: client.client_id,
        redirect_uri: client.redirect_uris[0],
        code_challenge: challenge,
        code_challenge_method: 'S256',
        state: 's',
        resource: 'https://elsewhere.example/mcp',
      }),
      { stopAt: client.redirect_uris[0]! },
    );
    assert.equal(page.url.searchParams.get('error'), 'invalid_target');
  });

  test('a token for one MCP server is refused by another; no token and a bad token get the right challenge', async () => {
    const client = await registerPublicClient(stack);
    const tokens = await authorizeAndExchange(stack, new Browser({ ca: stack.ca.caPem }), client);
    const token = String(tokens.body.access_token);

    const ok = await mcpInitialize(stack.mcpUrl(), token);
    assert.equal(ok.status, 200);
    await ok.body?.cancel();

    const otherServer = await mcpInitialize(stack.mcpUrl('/other/mcp'), token);
    assert.equal(otherServer.status, 401);
    assert.match(otherServer.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    assert.match(
      otherServer.headers.get('www-authenticate') ?? '',
      new RegExp(`resource_metadata="${stack.issuer}/.well-known/oauth-protected-resource/other/mcp"`),
    );

    const none = await mcpInitialize(stack.mcpUrl());
    assert.equal(none.status, 401);
    assert.equal(
      none.headers.get('www-authenticate'),
      `Bearer resource_metadata="${stack.issuer}/.well-known/oauth-protected-resource/mcp", scope="mcp:tools"`,
    );

    const forged = await mcpInitialize(stack.mcpUrl(), `${token.slice(0, -4)}AAAA`);
    assert.equal(forged.status, 401);

    const inQuery = await mcpInitialize(`${stack.mcpUrl()}?access_token=${token}`);
    assert.equal(inQuery.status, 400, 'tokens only in the Authorization header (RFC 6750 §3.1 invalid_request)');
    assert.match(inQuery.headers.get('www-authenticate') ?? '', /error="invalid_request"/);
  });

  test('a token without all the server scopes gets 403 insufficient_scope naming every needed scope', async () => {
    const client = await registerPublicClient(stack);
    const resource = stack.mcpUrl('/admin/mcp');
    const tokens = await authorizeAndExchange(stack, new Browser({ ca: stack.ca.caPem }), client, { resource, scope: 'mcp:tools' });
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    const response = await mcpInitialize(resource, String(tokens.body.access_token));
    assert.equal(response.status, 403);
    assert.match(response.headers.get('www-authenticate') ?? '', /error="insufficient_scope", scope="mcp:tools mcp:admin"/);
  });

  test("a request naming none of the server's scopes gets them (Gemini CLI asks for the AS's scopes_supported)", async () => {
    const client = await registerPublicClient(stack);
    const tokens = await authorizeAndExchange(stack, new Browser({ ca: stack.ca.caPem }), client, { scope: 'openid offline_access profile email' });
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    assert.match(String(inspectAccessToken(String(tokens.body.access_token)).claims.scope), /^mcp:tools( |$)/);
    const response = await mcpInitialize(stack.mcpUrl(), String(tokens.body.access_token));
    assert.equal(response.status, 200, 'the token works on the server');
    await response.body?.cancel();
  });

  // Reuse after the grace period revokes the grant: test/e2e/refresh-grace.test.ts moves its clock there.
  test('refresh tokens rotate; replaying a rotated one within the grace period returns the same pair', async () => {
    const client = await registerPublicClient(stack);
    const first = await authorizeAndExchange(stack, new Browser({ ca: stack.ca.caPem }), client);
    const refresh1 = String(first.body.refresh_token);

    const second = await tokenRequest(stack, { grant_type: 'refresh_token', refresh_token: refresh1, client_id: client.client_id });
    assert.equal(second.status, 200, JSON.stringify(second.body));
    const refresh2 = String(second.body.refresh_token);
    assert.notEqual(refresh2, refresh1, 'rotated');
    assert.equal(inspectAccessToken(String(second.body.access_token)).claims.aud, stack.mcpUrl(), 'refreshed token keeps its audience');

    const replay = await tokenRequest(stack, { grant_type: 'refresh_token', refresh_token: refresh1, client_id: client.client_id });
    assert.equal(replay.status, 200, JSON.stringify(replay.body));
    assert.equal(replay.body.refresh_token, refresh2, 'the same new refresh token, not a third one');

    const afterReplay = await tokenRequest(stack, { grant_type: 'refresh_token', refresh_token: refresh2, client_id: client.client_id });
    assert.equal(afterReplay.status, 200, 'the grant lives on');
  });

  test('an authorization code redeems once, only with its PKCE verifier', async () => {
    const client = await registerPublicClient(stack);
    const first = await authorizeAndExchange(stack, new Browser({ ca: stack.ca.caPem }), client);
    const again = await tokenRequest(stack, {
      grant_type: 'authorization_code',
      code: first.code,
      redirect_uri: client.redirect_uris[0]!,
      code_verifier: 'x'.repeat(43),
      client_id: client.client_id,
    });
    assert.equal(again.status, 400);
    assert.equal(again.body.error, 'invalid_grant');
  });

  test('revocation (RFC 7009) ends a refresh token', async () => {
    const client = await registerPublicClient(stack);
    const tokens = await authorizeAndExchange(stack, new Browser({ ca: stack.ca.caPem }), client);
    const refreshToken = String(tokens.body.refresh_token);
    const revoke = await revokeToken(stack, refreshToken, client.client_id);
    assert.equal(revoke.status, 200);
    const refreshed = await tokenRequest(stack, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: client.client_id });
    assert.equal(refreshed.body.error, 'invalid_grant');
  });

  test('after a restart, registrations, refresh tokens and signing keys are still valid (SQLite)', async () => {
    const client = await registerPublicClient(stack);
    const tokens = await authorizeAndExchange(stack, new Browser({ ca: stack.ca.caPem }), client);
    await stack.restartGateway();

    const oldAccess = await mcpInitialize(stack.mcpUrl(), String(tokens.body.access_token));
    assert.equal(oldAccess.status, 200, 'the signing key survived');
    await oldAccess.body?.cancel();

    const refreshed = await tokenRequest(stack, { grant_type: 'refresh_token', refresh_token: String(tokens.body.refresh_token), client_id: client.client_id });
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    const jwks = (await (await fetch(`${stack.issuer}/jwks`)).json()) as { keys: Array<Record<string, unknown>> };
    assert.ok(jwks.keys.length >= 1);
    assert.ok(
      jwks.keys.every((key) => key.d === undefined),
      'no private key material published',
    );
  });
});

describe('revocation is per client', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    await stack?.close();
  });

  test('another client cannot revoke a refresh token it does not own (RFC 7009 §2.1)', async () => {
    const owner = await registerPublicClient(stack);
    const stranger = await registerPublicClient(stack);
    const tokens = await authorizeAndExchange(stack, new Browser({ ca: stack.ca.caPem }), owner);
    const refreshToken = String(tokens.body.refresh_token);
    const revoke = await revokeToken(stack, refreshToken, stranger.client_id);
    assert.equal(revoke.status, 200, 'no oracle: the answer looks like success');
    const stillValid = await tokenRequest(stack, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: owner.client_id });
    assert.equal(stillValid.status, 200, JSON.stringify(stillValid.body));
  });
});
