/**
 * Scheduled signing-key rotation on two gateway instances sharing one SQLite store (docs/keys.md):
 * the next key is published before it signs, tokens issued before, during and after the rotation are
 * all accepted on both instances (the second one learns the new key from the token's `kid`, before
 * its periodic reload), and the retired key leaves /jwks once its tokens can no longer be valid.
 *
 * Time moves on a TestClock shared by both instances. oidc-provider stamps tokens with the real
 * clock, so access tokens here live two days: longer than the one-day rotation period the test
 * crosses, so "expired" never hides "refused".
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { createLocalJWKSet, type JSONWebKeySet, jwtVerify } from 'jose';
import { type RunningGateway, startGateway } from '../../src/app.ts';
import { PRE_PUBLICATION_MS, RETENTION_MARGIN_MS } from '../../src/authorization/signing-keys.ts';
import { configSchema } from '../../src/config/schema.ts';
import { Browser } from '../support/browser.ts';
import { TestClock } from '../support/clock.ts';
import { event, LogWatch } from '../support/log-watch.ts';
import { authorizeAndExchange, inspectAccessToken, registerPublicClient, tokenRequest } from './oauth.ts';
import { type Stack, startStack } from './stack.ts';

const DAY_MS = 86_400_000;
const ACCESS_TOKEN_TTL = 2 * 86_400;

interface Jwks {
  cacheControl: string | null;
  kids: string[];
}

async function jwksOf(baseUrl: string, host: string): Promise<Jwks> {
  const response = await send(baseUrl, host, 'GET', '/jwks');
  const body = JSON.parse(response.body) as { keys: Array<{ kid: string; d?: string }> };
  assert.ok(
    body.keys.every((key) => key.d === undefined),
    'only public keys',
  );
  return { cacheControl: response.headers['cache-control'] ?? null, kids: body.keys.map((key) => key.kid) };
}

/** An MCP initialize on one instance, addressed to the public host its routes answer. */
async function mcpStatus(baseUrl: string, host: string, token: string): Promise<number> {
  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
  });
  const response = await send(baseUrl, host, 'POST', '/mcp', body, {
    authorization: `Bearer ${token}`,
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
  });
  return response.status;
}

function send(
  baseUrl: string,
  host: string,
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, string | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, baseUrl), { method, headers: { host, ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers as Record<string, string | undefined>, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('scheduled signing-key rotation across two instances', () => {
  const clock = new TestClock();
  const replicaLog = new LogWatch('debug');
  let stack: Stack;
  let replica: RunningGateway;
  let host: string;

  before(async () => {
    stack = await startStack({
      clock,
      configure: (config) => {
        config.tokens = { accessTokenTtl: ACCESS_TOKEN_TTL };
        config.signingKeys = { rotationPeriod: 86_400 };
      },
    });
    host = new URL(stack.issuer).host;
    // The second instance: same configuration and SQLite file, its own port.
    replica = await startGateway(configSchema.parse({ ...stack.config, listen: { host: '127.0.0.1', port: 0 } }), {
      clock,
      logger: replicaLog.logger,
      announce: () => {},
    });
  });
  after(async () => {
    await replica?.close();
    await stack?.close();
  });

  test('tokens from before, during and after a rotation pass on both instances; the old key leaves /jwks after its tokens', async () => {
    const primary = stack.gateway.listenUrl;
    const client = await registerPublicClient(stack);
    // `openid` too, so every token response also carries an ID token signed by the same keys.
    const first = await authorizeAndExchange(stack, new Browser({ ca: stack.ca.caPem }), client, { scope: 'openid mcp:tools' });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    let refreshToken = String(first.body.refresh_token);
    let idToken = String(first.body.id_token);
    const refresh = async (): Promise<string> => {
      const answer = await tokenRequest(stack, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: client.client_id });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      refreshToken = String(answer.body.refresh_token);
      idToken = String(answer.body.id_token);
      return String(answer.body.access_token);
    };
    /** The ID token's kid, after checking its signature against the primary's /jwks as a client would. */
    const verifiedIdTokenKid = async (): Promise<string | undefined> => {
      const response = await send(primary, host, 'GET', '/jwks');
      const { protectedHeader } = await jwtVerify(idToken, createLocalJWKSet(JSON.parse(response.body) as JSONWebKeySet), {
        issuer: stack.issuer,
        audience: client.client_id,
      });
      return protectedHeader.kid;
    };
    const kidOf = (token: string) => inspectAccessToken(token).header.kid;
    const before = String(first.body.access_token);
    const oldKid = String(kidOf(before));

    const initial = await jwksOf(primary, host);
    assert.deepEqual(initial.kids, [oldKid]);
    assert.equal(initial.cacheControl, 'public, max-age=600', 'the JWKS may be cached ten minutes, far less than the pre-publication hour');
    for (const base of [primary, replica.listenUrl]) assert.equal(await mcpStatus(base, host, before), 200);

    // One second past "rotation period minus pre-publication": the next key is published, not used.
    clock.advance(DAY_MS - PRE_PUBLICATION_MS + 1000);
    const published = await jwksOf(primary, host);
    assert.equal(published.kids.length, 2, 'next key published ahead');
    assert.equal(published.kids[0], oldKid, 'the old key still signs');
    const newKid = published.kids[1]!;
    const during = await refresh();
    assert.equal(kidOf(during), oldKid, 'signed by the old key while the new one is only published');
    assert.equal(await verifiedIdTokenKid(), oldKid);
    for (const base of [primary, replica.listenUrl]) {
      assert.equal(await mcpStatus(base, host, before), 200);
      assert.equal(await mcpStatus(base, host, during), 200);
    }

    // The new key's hour has come: it signs; the old one only verifies.
    clock.advance(PRE_PUBLICATION_MS);
    const afterwards = await refresh();
    assert.equal(kidOf(afterwards), newKid, 'signed by the new key once active');
    // The replica has not read storage since the start (no request of its own reached the
    // authorization server, and its timer is a minute of real time away): the token's kid makes it read.
    assert.ok(!replicaLog.some(event('signing_key.unknown_kid')));
    for (const token of [afterwards, during, before]) assert.equal(await mcpStatus(replica.listenUrl, host, token), 200);
    assert.ok(replicaLog.some(event('signing_key.unknown_kid', { kid: newKid, known: true })), 'the replica learned the key from the token');
    for (const token of [afterwards, during, before]) assert.equal(await mcpStatus(primary, host, token), 200);
    assert.equal(await verifiedIdTokenKid(), newKid, 'ID tokens switch keys with access tokens');
    assert.deepEqual((await jwksOf(primary, host)).kids, [newKid, oldKid], 'both published: active first, then the retired key');
    assert.deepEqual((await jwksOf(replica.listenUrl, host)).kids, [newKid, oldKid]);

    // The retired key stays until every token it signed has expired (longest lifetime plus margin)...
    // (Meanwhile the one-day schedule has published the key after next; only the old key matters here.)
    const retention = ACCESS_TOKEN_TTL * 1000 + RETENTION_MARGIN_MS;
    clock.advance(retention - 1000);
    const lastMoment = await jwksOf(primary, host);
    assert.ok(lastMoment.kids.includes(oldKid) && lastMoment.kids.includes(newKid), lastMoment.kids.join());
    // ...and then leaves the JWKS on every instance.
    clock.advance(1000);
    for (const base of [primary, replica.listenUrl]) {
      const gone = await jwksOf(base, host);
      assert.ok(!gone.kids.includes(oldKid), `retired key still published by ${base}`);
      assert.ok(gone.kids.includes(newKid));
    }
  });
});
