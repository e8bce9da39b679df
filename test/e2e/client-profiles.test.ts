/**
 * Every real MCP client, as it behaves on the wire (test/support/client-profiles.ts), goes the whole
 * way: discovery in its order, registration (DCR or CIMD), consent, upstream IdP login, code exchange,
 * refresh, and a tools/call through the gateway with the refreshed access token. The TypeScript SDK
 * runs as itself. The real mcp-remote package runs in mcp-remote.test.ts.
 */

import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Browser } from '../support/browser.ts';
import { type CimdHost, startCimdHost } from '../support/cimd-host.ts';
import { CLIENT_PROFILES, type ClientProfile, type DiscoveryStep, resourceValue, scopeValue, type TokenAuth, withPort } from '../support/client-profiles.ts';
import { connectWithLogin, TestOAuthClientProvider } from '../support/mcp-client.ts';
import { inspectAccessToken, pkcePair } from './oauth.ts';
import { loggedInClient, type Stack, startStack } from './stack.ts';

const INSPECTOR_ORIGIN = 'http://localhost:6274';

interface Discovered {
  metadata: Record<string, unknown>;
  /** Scopes the client found (the 401's `scope`, else PRM `scopes_supported`). */
  scopes: string[];
  probes: Array<{ step: DiscoveryStep; url: string; status: number }>;
}

/** Parses `WWW-Authenticate: Bearer k="v", …` into its parameters. */
function challengeParams(header: string | null): Record<string, string> {
  const params: Record<string, string> = {};
  for (const match of (header ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)) params[match[1]!] = match[2]!;
  return params;
}

/** Runs the client's discovery steps in its order, stopping each phase at the first success. */
async function discover(stack: Stack, profile: ClientProfile): Promise<Discovered> {
  const headers: Record<string, string> = profile.browserOrigin ? { origin: profile.browserOrigin } : {};
  const mcpUrl = new URL(stack.mcpUrl());
  const probes: Discovered['probes'] = [];
  let prm: Record<string, unknown> | undefined;
  let prmUrl: string | undefined;
  let challengeScope: string | undefined;
  let metadata: Record<string, unknown> | undefined;

  const getJson = async (step: DiscoveryStep, url: string) => {
    const response = await fetch(url, { headers });
    probes.push({ step, url, status: response.status });
    if (profile.browserOrigin) assert.ok(response.headers.get('access-control-allow-origin'), `${url}: a browser client must be able to read it (CORS)`);
    assert.equal(response.headers.get('access-control-allow-credentials'), null, `${url}: no credentials cross-origin`);
    if (response.status === 200) return (await response.json()) as Record<string, unknown>;
    await response.body?.cancel();
    return undefined;
  };

  for (const step of profile.discovery) {
    switch (step) {
      case 'root-endpoints':
        metadata = {
          issuer: mcpUrl.origin,
          authorization_endpoint: `${mcpUrl.origin}/authorize`,
          token_endpoint: `${mcpUrl.origin}/token`,
          registration_endpoint: `${mcpUrl.origin}/register`,
        };
        break;
      case 'challenge': {
        const response = await fetch(mcpUrl, {
          method: 'POST',
          headers: { ...headers, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
          body: JSON.stringify({
            jsonrpc: '2.0',
            id: 0,
            method: 'initialize',
            params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: profile.name, version: '1' } },
          }),
        });
        await response.body?.cancel();
        probes.push({ step, url: mcpUrl.href, status: response.status });
        assert.equal(response.status, 401);
        if (profile.browserOrigin)
          assert.match(response.headers.get('access-control-expose-headers') ?? '', /www-authenticate/i, 'the challenge is readable by the page');
        const params = challengeParams(response.headers.get('www-authenticate'));
        assert.ok(params.resource_metadata, 'Claude Code fails without resource_metadata in the 401');
        prmUrl = params.resource_metadata;
        challengeScope = params.scope;
        break;
      }
      case 'prm-path':
      case 'prm-root': {
        if (prm) break;
        const url =
          prmUrl ??
          (step === 'prm-path'
            ? `${mcpUrl.origin}/.well-known/oauth-protected-resource${mcpUrl.pathname}`
            : `${mcpUrl.origin}/.well-known/oauth-protected-resource`);
        prm = await getJson(step, url);
        break;
      }
      default: {
        if (metadata) break;
        const issuer = (prm?.authorization_servers as string[] | undefined)?.[0] ?? mcpUrl.origin;
        const paths: Record<string, string> = {
          rfc8414: `${issuer}/.well-known/oauth-authorization-server`,
          oidc: `${issuer}/.well-known/openid-configuration`,
          'rfc8414-path-inserted': `${mcpUrl.origin}/.well-known/oauth-authorization-server${mcpUrl.pathname}`,
          'oidc-path-inserted': `${mcpUrl.origin}/.well-known/openid-configuration${mcpUrl.pathname}`,
          'oidc-path-appended': `${mcpUrl.href}/.well-known/openid-configuration`,
        };
        metadata = await getJson(step, paths[step]!);
      }
    }
  }
  assert.ok(metadata, `${profile.name}: discovery found no authorization server metadata (${JSON.stringify(probes)})`);
  for (const probe of probes)
    assert.ok(
      probe.status === 200 || (probe.step === 'challenge' && probe.status === 401),
      `the first place the client looks answers: ${JSON.stringify(probe)}`,
    );
  if (prm) {
    assert.equal(prm.resource, stack.mcpUrl(), 'PRM resource is the canonical MCP URL');
    // Claude.ai refuses any difference, even a trailing slash (docs/clients.md).
    assert.equal(metadata.issuer, (prm.authorization_servers as string[])[0], 'the issuer is exactly the authorization server PRM names');
  }
  assert.equal(metadata.issuer, stack.issuer);
  const scopes = challengeScope !== undefined ? challengeScope.split(' ').filter(Boolean) : ((prm?.scopes_supported as string[] | undefined) ?? []);
  assert.ok(!scopes.includes('offline_access'), 'offline_access is never advertised as a resource scope');
  return { metadata, scopes, probes };
}

function tokenRequestHeaders(auth: TokenAuth, clientId: string, secret: string | undefined, origin: string | undefined): Record<string, string> {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (origin) headers.origin = origin;
  // RFC 6749 §2.3.1: form-urlencode, then base64 of id:secret.
  if (auth === 'client_secret_basic')
    headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret ?? '')}`).toString('base64')}`;
  return headers;
}

function tokenRequestAuthFields(auth: TokenAuth, clientId: string, secret: string | undefined): Record<string, string> {
  if (auth === 'none') return { client_id: clientId };
  if (auth === 'client_secret_post') return { client_id: clientId, client_secret: secret ?? '' };
  return {};
}

async function postToken(url: string, fields: Record<string, string>, headers: Record<string, string>, origin: string | undefined) {
  const response = await fetch(url, { method: 'POST', headers, body: new URLSearchParams(fields) });
  const body = (await response.json()) as Record<string, unknown>;
  if (origin) {
    assert.ok(['*', origin].includes(response.headers.get('access-control-allow-origin') ?? ''), 'a browser client can read the token response');
  }
  assert.notEqual(response.headers.get('access-control-allow-credentials'), 'true', 'no credentials on cross-origin token requests');
  assert.match(response.headers.get('cache-control') ?? '', /no-store/);
  return { status: response.status, body };
}

/** One JSON-RPC request over Streamable HTTP, answered as JSON or as an SSE stream. */
async function mcpRequest(url: string, token: string, message: Record<string, unknown>, headers: Record<string, string> = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${token}`,
      'mcp-protocol-version': '2025-06-18',
      ...headers,
    },
    body: JSON.stringify(message),
  });
  const text = await response.text();
  let reply: Record<string, unknown> | undefined;
  if ((response.headers.get('content-type') ?? '').includes('text/event-stream')) {
    for (const line of text.split('\n')) {
      if (!line.startsWith('data:')) continue;
      const data = JSON.parse(line.slice(5)) as Record<string, unknown>;
      if (data.id === message.id) reply = data;
    }
  } else if (text) {
    reply = JSON.parse(text) as Record<string, unknown>;
  }
  return { status: response.status, headers: response.headers, reply };
}

/** initialize, notifications/initialized, tools/call echo, with the headers this client sends. */
async function callEcho(stack: Stack, token: string, profile: ClientProfile, text: string): Promise<void> {
  const headers: Record<string, string> = profile.browserOrigin ? { origin: profile.browserOrigin } : {};
  const init = await mcpRequest(
    stack.mcpUrl(),
    token,
    {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: profile.name, version: '1' } },
    },
    headers,
  );
  assert.equal(init.status, 200, JSON.stringify(init.reply));
  const session = init.headers.get('mcp-session-id');
  if (profile.browserOrigin) {
    assert.equal(init.headers.get('access-control-allow-origin'), profile.browserOrigin);
    assert.match(init.headers.get('access-control-expose-headers') ?? '', /mcp-session-id/i, 'the page can read the session id');
    assert.equal(init.headers.get('access-control-allow-credentials'), null);
  }
  const sessionHeaders = { ...headers, ...(session ? { 'mcp-session-id': session } : {}) };
  const initialized = await fetch(stack.mcpUrl(), {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${token}`,
      'mcp-protocol-version': '2025-06-18',
      ...sessionHeaders,
    },
    body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
  });
  await initialized.body?.cancel();
  assert.equal(initialized.status, 202);
  const call = await mcpRequest(
    stack.mcpUrl(),
    token,
    { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { text } } },
    sessionHeaders,
  );
  assert.equal(call.status, 200, JSON.stringify(call.reply));
  assert.match(JSON.stringify((call.reply?.result as { content?: unknown })?.content), new RegExp(text));
}

/** The whole flow for one profile. */
async function runProfile(stack: Stack, cimdHost: CimdHost, profile: ClientProfile): Promise<void> {
  const origin = profile.browserOrigin;
  const { metadata, scopes } = await discover(stack, profile);
  const port = randomInt(20_000, 60_000);

  // Registration.
  let clientId: string;
  let clientSecret: string | undefined;
  let tokenAuth = profile.tokenAuth;
  let displayedName: string;
  if (profile.registration.kind === 'dcr') {
    const body = withPort(profile.registration.body, port);
    const response = await fetch(String(metadata.registration_endpoint), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(origin ? { origin } : {}) },
      body: JSON.stringify(body),
    });
    const registered = (await response.json()) as Record<string, unknown>;
    assert.equal(response.status, 201, `registration: ${JSON.stringify(registered)}`);
    if (origin) assert.ok(response.headers.get('access-control-allow-origin'), 'registration readable cross-origin');
    assert.deepEqual(registered.redirect_uris, body.redirect_uris, 'every redirect URI kept');
    clientId = String(registered.client_id);
    clientSecret = registered.client_secret as string | undefined;
    // The method the gateway will enforce, which a client uses when it named none (RFC 7591 §3.2.1).
    tokenAuth = registered.token_endpoint_auth_method as TokenAuth;
    displayedName = String(body.client_name);
  } else {
    assert.equal(metadata.client_id_metadata_document_supported, true, 'CIMD is advertised');
    assert.equal((metadata.token_endpoint_auth_methods_supported as string[])[0], 'none', 'none listed first');
    const path = new URL(profile.registration.realClientId).pathname.replace(/^\//, `/${profile.name.replace(/[^a-z]/gi, '').toLowerCase()}/`);
    clientId = cimdHost.document(path, profile.registration.document);
    displayedName = String(profile.registration.document.client_name);
  }

  // Authorization: consent names the client and where the code goes, then the upstream IdP login.
  const redirectUri = withPort(profile.redirectUri, port);
  const { verifier, challenge } = pkcePair();
  const state = randomBytes(12).toString('base64url');
  const authorize = new URL(String(metadata.authorization_endpoint));
  const params: Record<string, string | undefined> = {
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state,
    scope: scopeValue(profile.scope, scopes),
    resource: resourceValue(stack.mcpUrl(), profile.resource.authorize),
    ...profile.authorizeExtras,
  };
  for (const [name, value] of Object.entries(params)) if (value !== undefined) authorize.searchParams.set(name, value);
  const browser = new Browser({ ca: stack.ca.caPem });
  try {
    const consent = await browser.goto(authorize, { stopAt: redirectUri });
    assert.ok(!consent.stopped && consent.url.pathname.startsWith('/interaction/'), `expected the consent page, got ${consent.toString()}`);
    assert.ok(consent.text.includes(displayedName), 'consent names the client');
    // A private-use scheme (cursor://) is named by its scheme: its "host" is whatever the app chose.
    const target = new URL(redirectUri);
    const redirectHost = target.protocol === 'https:' || target.protocol === 'http:' ? target.host : `${target.protocol}//`;
    assert.ok(consent.text.includes(redirectHost), `consent shows where the code goes (${redirectHost})`);
    assert.ok(consent.text.includes(stack.mcpUrl()), 'consent names the MCP server');
    const idpPage = await browser.submitForm(consent, { button: 'approve' });
    const returned = (await stack.idp.signIn(browser, idpPage, 'alice', { stopAt: redirectUri })).url;
    assert.equal(returned.searchParams.get('error'), null, returned.href);
    assert.equal(returned.searchParams.get('state'), state);
    assert.equal(returned.searchParams.get('iss'), stack.issuer, 'RFC 9207 iss, identical to the issuer');
    const code = returned.searchParams.get('code');
    assert.ok(code);

    // Code exchange.
    const resourceOnToken = resourceValue(stack.mcpUrl(), profile.resource.token);
    const headers = tokenRequestHeaders(tokenAuth, clientId, clientSecret, origin);
    const exchanged = await postToken(
      String(metadata.token_endpoint),
      {
        grant_type: 'authorization_code',
        code,
        redirect_uri: redirectUri,
        code_verifier: verifier,
        ...tokenRequestAuthFields(tokenAuth, clientId, clientSecret),
        ...(resourceOnToken ? { resource: resourceOnToken } : {}),
      },
      headers,
      origin,
    );
    assert.equal(exchanged.status, 200, `code exchange: ${JSON.stringify(exchanged.body)}`);
    assert.equal(exchanged.body.token_type, 'Bearer');
    assert.equal(inspectAccessToken(String(exchanged.body.access_token)).claims.aud, stack.mcpUrl(), 'audience-bound to the MCP server (RFC 8707)');
    const refreshToken = String(exchanged.body.refresh_token);
    assert.ok(exchanged.body.refresh_token, 'a refresh token, without offline_access too');

    // Refresh: rotated, still for the same server.
    const resourceOnRefresh = resourceValue(stack.mcpUrl(), profile.resource.refresh);
    const refreshed = await postToken(
      String(metadata.token_endpoint),
      {
        grant_type: 'refresh_token',
        refresh_token: refreshToken,
        ...tokenRequestAuthFields(tokenAuth, clientId, clientSecret),
        ...(resourceOnRefresh ? { resource: resourceOnRefresh } : {}),
      },
      headers,
      origin,
    );
    assert.equal(refreshed.status, 200, `refresh: ${JSON.stringify(refreshed.body)}`);
    assert.notEqual(refreshed.body.refresh_token, refreshToken, 'refresh tokens rotate');
    assert.equal(inspectAccessToken(String(refreshed.body.access_token)).claims.aud, stack.mcpUrl());

    await callEcho(stack, String(refreshed.body.access_token), profile, `hello from ${profile.name.split(' ')[0]}`);
  } finally {
    await browser.close();
  }
}

describe('real MCP client profiles: register, consent, log in upstream, exchange, refresh, call a tool', () => {
  let stack: Stack;
  let cimdHost: CimdHost;
  before(async () => {
    stack = await startStack({
      configure: (config) => {
        // MCP Inspector runs on http://localhost:6274 and calls the MCP route from the page.
        config.servers![0]!.allowedOrigins = [INSPECTOR_ORIGIN];
      },
    });
    cimdHost = await startCimdHost({ tls: stack.ca });
  });
  after(async () => {
    await cimdHost?.close();
    await stack?.close();
  });

  for (const profile of CLIENT_PROFILES) {
    test(profile.name, async () => {
      await runProfile(stack, cimdHost, profile);
    });
  }

  test('TypeScript SDK client (itself): DCR, resource from PRM, refresh on a 401, tools/call', async () => {
    const provider = new TestOAuthClientProvider({ mode: 'dcr', clientName: 'TypeScript SDK profile' });
    const client = await loggedInClient(stack, provider);
    const sent = provider.authorizationUrl!;
    // The SDK sends resource only when PRM exists (docs/clients.md); PRM exists here.
    assert.ok(sent.searchParams.get('resource'), 'resource sent');
    assert.equal(new URL(sent.searchParams.get('resource')!).href, new URL(stack.mcpUrl()).href);
    const echo = await client.callTool({ name: 'echo', arguments: { text: 'sdk first token' } });
    assert.match(JSON.stringify(echo.content), /sdk first token/);
    await client.close();

    // The access token is refused (as when it expired): the SDK refreshes, with no login.
    const first = provider.savedTokens.at(-1)!;
    provider.setTokens({ ...first, access_token: 'expired-or-revoked' });
    const again = await connectWithLogin({
      mcpUrl: stack.mcpUrl(),
      provider,
      fetch: stack.fetch,
      login: async () => {
        throw new Error('a refresh was expected, not a new login');
      },
    });
    assert.equal(provider.savedTokens.length, 2, 'refreshed once');
    assert.notEqual(provider.savedTokens[1]!.refresh_token, first.refresh_token, 'rotated');
    const echoAgain = await again.callTool({ name: 'echo', arguments: { text: 'sdk refreshed token' } });
    assert.match(JSON.stringify(echoAgain.content), /sdk refreshed token/);
    await again.close();
  });

  test('TypeScript SDK client (itself) with a CIMD clientMetadataUrl and offline_access in its scope', async () => {
    const redirectUrl = `http://127.0.0.1:${randomInt(20_000, 60_000)}/callback`;
    const documentUrl = cimdHost.document('/sdk/client.json', {
      client_name: 'SDK CIMD profile',
      redirect_uris: ['http://127.0.0.1/callback'],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      scope: 'offline_access',
    });
    const provider = new TestOAuthClientProvider({ mode: 'cimd', clientMetadataUrl: documentUrl, redirectUrl, scope: 'offline_access' });
    const browser = new Browser({ ca: stack.ca.caPem });
    const client = await connectWithLogin({
      mcpUrl: stack.mcpUrl(),
      provider,
      fetch: stack.fetch,
      login: async (authorizationUrl) => {
        let page = await browser.goto(authorizationUrl);
        page = await browser.submitForm(page, { button: 'approve' });
        return (await stack.idp.signIn(browser, page, 'alice', { stopAt: redirectUrl })).url;
      },
    });
    assert.equal(provider.clientId, documentUrl);
    const echo = await client.callTool({ name: 'echo', arguments: { text: 'sdk cimd' } });
    assert.match(JSON.stringify(echo.content), /sdk cimd/);
    await client.close();
    await browser.close();
  });
});
