/**
 * Many servers behind one gateway, in process on a real listener: routing by path and by Host, one
 * resource (audience) per server, per-user target headers, the gateway's own forwarding headers, JSON-RPC
 * body checks, an HTTP+SSE (2024-11-05) upstream driven by the SDK's SSE client, and one slow or dead
 * upstream not holding up the others. Upstreams are real HTTP servers (SDK servers where MCP matters).
 */
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import type { CryptoKey, JWK } from 'jose';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { z } from 'zod';
import type { ServerConfig } from '../../../src/config/schema.ts';
import { configSchema } from '../../../src/config/schema.ts';
import type { DemoServer } from '../../../src/demo/server.ts';
import { startDemoServer } from '../../../src/demo/server.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import type { UpstreamTarget } from '../../../src/proxy/upstream-targets.ts';
import type { ResourceServer } from '../../../src/resource-server/index.ts';
import { createResourceServer, resourceFor } from '../../../src/resource-server/index.ts';
import type { UserRecord } from '../../../src/storage/records.ts';

interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** Raw HTTP with an explicit Host header (fetch does not allow setting it). */
function raw(url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const parsed = new URL(url);
    const req = httpRequest(
      {
        host: parsed.hostname,
        port: parsed.port,
        path: parsed.pathname + parsed.search,
        method: options.method ?? 'POST',
        headers: options.headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const INITIALIZE = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
});

// ---------------------------------------------------------------------------------------------------
// Upstreams.

/** Answers every JSON-RPC request with the request headers it received (and counts requests). */
interface HeaderEcho {
  url: string;
  http: Server;
  requests: number;
  close(): Promise<void>;
}

async function startHeaderEcho(): Promise<HeaderEcho> {
  const echo: HeaderEcho = { url: '', http: createServer(), requests: 0, close: async () => undefined };
  echo.http.on('request', (req: IncomingMessage, res: ServerResponse) => {
    echo.requests++;
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(Buffer.concat(chunks).toString());
      } catch {
        parsed = { id: 'upstream-saw-garbage' };
      }
      // A batch is answered with an array, as JSON-RPC 2.0 §6 (and the gateway's answer check) asks.
      const answer = (message: unknown) => ({ jsonrpc: '2.0', id: (message as { id?: unknown }).id ?? null, result: { headers: req.headers, url: req.url } });
      const body = JSON.stringify(Array.isArray(parsed) ? parsed.map(answer) : answer(parsed));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => echo.http.listen(0, '127.0.0.1', resolve));
  echo.url = `http://127.0.0.1:${(echo.http.address() as AddressInfo).port}/mcp`;
  echo.close = () =>
    new Promise<void>((resolve) => {
      echo.http.close(() => resolve());
      echo.http.closeAllConnections();
    });
  return echo;
}

/** A 2024-11-05 HTTP+SSE MCP server built with the SDK: `GET /legacy/sse`, `POST /legacy/messages?sessionId=`. */
interface LegacyServer {
  url: string;
  http: Server;
  /** Endpoints announced, to prove the client never saw one of them. */
  sessions: Map<string, SSEServerTransport>;
  close(): Promise<void>;
}

async function startLegacyServer(): Promise<LegacyServer> {
  const sessions = new Map<string, SSEServerTransport>();
  const http = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://upstream');
    if (req.method === 'GET' && url.pathname === '/legacy/sse') {
      const transport = new SSEServerTransport('/legacy/messages', res);
      sessions.set(transport.sessionId, transport);
      res.on('close', () => sessions.delete(transport.sessionId));
      const server = new McpServer({ name: 'legacy', version: '1.0.0' });
      server.registerTool('shout', { description: 'uppercases', inputSchema: { text: z.string() } }, async ({ text }, extra) => ({
        content: [{ type: 'text', text: `${text.toUpperCase()} for ${String(extra.requestInfo?.headers['x-user-id'] ?? 'nobody')}` }],
      }));
      void server.connect(transport);
      return;
    }
    if (req.method === 'POST' && url.pathname === '/legacy/messages') {
      const transport = sessions.get(url.searchParams.get('sessionId') ?? '');
      if (!transport) {
        res.writeHead(404).end('no session');
        return;
      }
      void transport.handlePostMessage(req, res);
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const port = (http.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/legacy/sse`,
    http,
    sessions,
    close: () =>
      new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      }),
  };
}

// ---------------------------------------------------------------------------------------------------
// The harness.

let privateKey: CryptoKey;
let publicJwk: JWK;
let issuer: string;
let port: number;
/** The second name of the gateway's listener, used for the host-routed server. */
let otherHost: string;
let gateway: ResourceServer;
let gatewayHttp: Server;
let demo: DemoServer;
let echo: HeaderEcho;
let legacy: LegacyServer;
let hanging: Server;
let servers: ServerConfig[];
const logLines: string[] = [];

const ALICE: UserRecord = { id: 'local:alice', provider: 'local', subject: 'alice', email: 'alice@example.com', groups: [], createdAt: 0, lastLoginAt: 0 };

async function token(audience: string, sub = ALICE.id): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ client_id: 'test-client', scope: '' })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'test-key' })
    .setIssuer(issuer)
    .setAudience(audience)
    .setSubject(sub)
    .setIssuedAt(now)
    .setExpirationTime(now + 300)
    .sign(privateKey);
}

before(async () => {
  const pair = await generateKeyPair('ES256');
  privateKey = pair.privateKey;
  publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'test-key', alg: 'ES256', use: 'sig' };
  demo = await startDemoServer({ host: '127.0.0.1', port: 0 });
  echo = await startHeaderEcho();
  legacy = await startLegacyServer();
  // Accepts connections and never answers.
  hanging = createServer(() => undefined);
  await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));

  gatewayHttp = createServer();
  await new Promise<void>((resolve) => gatewayHttp.listen(0, '127.0.0.1', resolve));
  port = (gatewayHttp.address() as AddressInfo).port;
  issuer = `http://127.0.0.1:${port}`;
  otherHost = `localhost:${port}`;

  servers = configSchema.parse({
    publicUrl: issuer,
    servers: [
      { name: 'alpha', path: '/alpha', upstream: { url: demo.url }, identityHeaders: { subject: 'x-user-id', email: 'x-alpha-email' } },
      { name: 'beta', path: '/beta', upstream: { url: demo.url }, identityHeaders: { subject: 'x-user-id' } },
      // Same path as a path-only server would have, on another Host.
      { name: 'hosted', host: otherHost, path: '/alpha', upstream: { url: demo.url }, identityHeaders: { subject: 'x-user-id' } },
      { name: 'only-hosted', host: otherHost, path: '/only-hosted', upstream: { url: demo.url } },
      { name: 'echo', path: '/echo', upstream: { url: echo.url }, identityHeaders: { subject: 'x-user-id' } },
      { name: 'legacy', path: '/legacy', upstream: { url: legacy.url, transport: 'sse' }, identityHeaders: { subject: 'x-user-id' } },
      { name: 'slow', path: '/slow', upstream: { url: `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/mcp` }, upstreamTimeoutMs: 1_500 },
      { name: 'proxied', path: '/proxied', upstream: { forwardAuth: true } },
    ],
  }).servers!;

  const targets = new Map<string, UpstreamTarget>();
  for (const entry of servers) if ('url' in entry.upstream) targets.set(entry.name, { url: entry.upstream.url, transport: entry.upstream.transport });

  gateway = createResourceServer({
    issuer,
    servers,
    publicKeys: () => [publicJwk],
    findUser: async (sub) => (sub === ALICE.id ? ALICE : undefined),
    logger: createLogger('info', { write: (line: string) => void logLines.push(line) }),
    upstreams: { get: (name) => targets.get(name), close: async () => undefined },
    stripClientHeaders: ['X-Acme-*', 'x-tenant'],
  });
  gatewayHttp.on('request', (req, res) => {
    if (gateway.handle(req, res)) return;
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error":"not_found"}');
  });
});

after(async () => {
  await new Promise<void>((resolve) => {
    gatewayHttp.close(() => resolve());
    gatewayHttp.closeAllConnections();
  });
  await gateway.close();
  await demo.close();
  await echo.close();
  await legacy.close();
  await new Promise<void>((resolve) => {
    hanging.close(() => resolve());
    hanging.closeAllConnections();
  });
});

// ---------------------------------------------------------------------------------------------------

describe('resource URIs', () => {
  it('derive from publicUrl + path, from the host, or from the configured resource', () => {
    assert.equal(resourceFor('https://gw.example', { path: '/a' }), 'https://gw.example/a');
    assert.equal(resourceFor('https://gw.example', { path: '/a', host: 'tools.example' }), 'https://tools.example/a');
    assert.equal(resourceFor('https://gw.example', { path: '/a', host: 'tools.example:443' }), 'https://tools.example/a');
    assert.equal(resourceFor('https://gw.example', { path: '/a', resource: 'https://Other.example/api/' }), 'https://other.example/api');
  });
});

describe('routing by path and Host', () => {
  it('serves each server its own PRM, the host-routed one only on its host', async () => {
    const alpha = JSON.parse((await raw(`${issuer}/.well-known/oauth-protected-resource/alpha`, { method: 'GET' })).body);
    assert.equal(alpha.resource, `${issuer}/alpha`);
    assert.equal(alpha.resource_name, 'alpha');
    const hosted = await raw(`${issuer}/.well-known/oauth-protected-resource/alpha`, { method: 'GET', headers: { host: `LOCALHOST:${port}` } });
    assert.equal(JSON.parse(hosted.body).resource, `http://${otherHost}/alpha`);
    assert.equal(JSON.parse(hosted.body).resource_name, 'hosted');
    assert.deepEqual(JSON.parse(hosted.body).authorization_servers, [issuer]);
    // The forward-auth server has no route here but is described.
    const proxied = JSON.parse((await raw(`${issuer}/.well-known/oauth-protected-resource/proxied`, { method: 'GET' })).body);
    assert.equal(proxied.resource, `${issuer}/proxied`);
  });

  it('challenges with the resource metadata URL of the server the request reached', async () => {
    const onIssuerHost = await raw(`${issuer}/alpha`, { headers: MCP_HEADERS, body: INITIALIZE });
    assert.equal(onIssuerHost.status, 401);
    assert.match(String(onIssuerHost.headers['www-authenticate']), new RegExp(`resource_metadata="${issuer}/.well-known/oauth-protected-resource/alpha"`));
    const onOtherHost = await raw(`${issuer}/alpha`, { headers: { ...MCP_HEADERS, host: otherHost }, body: INITIALIZE });
    assert.equal(onOtherHost.status, 401);
    assert.match(
      String(onOtherHost.headers['www-authenticate']),
      new RegExp(`resource_metadata="http://${otherHost}/.well-known/oauth-protected-resource/alpha"`),
    );
  });

  it('refuses a token for one server at every other (audience binding)', async () => {
    const alphaToken = await token(`${issuer}/alpha`);
    const hostedToken = await token(`http://${otherHost}/alpha`);
    const ok = await raw(`${issuer}/alpha`, { headers: { ...MCP_HEADERS, authorization: `Bearer ${alphaToken}` }, body: INITIALIZE });
    assert.equal(ok.status, 200);
    for (const [url, host, bearer] of [
      [`${issuer}/beta`, undefined, alphaToken],
      [`${issuer}/alpha`, otherHost, alphaToken],
      [`${issuer}/alpha`, undefined, hostedToken],
    ] as const) {
      const res = await raw(url, { headers: { ...MCP_HEADERS, authorization: `Bearer ${bearer}`, ...(host ? { host } : {}) }, body: INITIALIZE });
      assert.equal(res.status, 401, `${url} on ${host ?? 'issuer host'}`);
      assert.match(String(res.headers['www-authenticate']), /error="invalid_token", error_description="The access token was not issued for this MCP server\."/);
    }
    const hosted = await raw(`${issuer}/alpha`, {
      headers: { ...MCP_HEADERS, authorization: `Bearer ${hostedToken}`, host: otherHost.toUpperCase() },
      body: INITIALIZE,
    });
    assert.equal(hosted.status, 200);
  });

  it('answers unknown routes and forward-auth paths with a plain 404, not a challenge', async () => {
    for (const path of ['/nothing', '/proxied', '/proxied/mcp', '/alphabet']) {
      const res = await raw(`${issuer}${path}`, { headers: MCP_HEADERS, body: INITIALIZE });
      assert.equal(res.status, 404, path);
      assert.equal(res.headers['www-authenticate'], undefined);
      assert.equal(JSON.parse(res.body).error, 'not_found');
    }
  });

  it('does not serve a host-routed path on another Host', async () => {
    // `/only-hosted` exists on the other host alone.
    const onItsHost = await raw(`${issuer}/only-hosted`, { headers: { ...MCP_HEADERS, host: otherHost }, body: INITIALIZE });
    assert.equal(onItsHost.status, 401);
    const elsewhere = await raw(`${issuer}/only-hosted`, { headers: MCP_HEADERS, body: INITIALIZE });
    assert.equal(elsewhere.status, 404);
    assert.equal(elsewhere.headers['www-authenticate'], undefined);
    const prmElsewhere = await raw(`${issuer}/.well-known/oauth-protected-resource/only-hosted`, { method: 'GET' });
    assert.equal(prmElsewhere.status, 404);
    const prmOnHost = await raw(`${issuer}/.well-known/oauth-protected-resource/only-hosted`, { method: 'GET', headers: { host: otherHost } });
    assert.equal(prmOnHost.status, 200);
    // A path-only server answers on any Host.
    assert.equal((await raw(`${issuer}/beta`, { headers: { ...MCP_HEADERS, host: otherHost }, body: INITIALIZE })).status, 401);
  });
});

describe('headers on the way up', () => {
  it("adds the identity and the gateway's forwarding headers, dropping client copies", async () => {
    const res = await raw(`${issuer}/echo`, {
      headers: {
        ...MCP_HEADERS,
        authorization: `Bearer ${await token(`${issuer}/echo`)}`,
        'x-user-id': 'local:mallory',
        'x-forwarded-for': '6.6.6.6',
        'x-forwarded-host': 'evil.example',
        forwarded: 'for=6.6.6.6',
        'x-real-ip': '6.6.6.6',
        'mcp-method': 'tools/call',
        'mcp-name': 'search',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'search' } }),
    });
    assert.equal(res.status, 200, res.body);
    const seen = JSON.parse(res.body).result.headers as Record<string, string>;
    assert.equal(seen['x-user-id'], 'local:alice');
    assert.equal(seen['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen['x-forwarded-proto'], 'http');
    assert.equal(seen['x-forwarded-host'], `127.0.0.1:${port}`);
    assert.equal(seen.forwarded, undefined);
    assert.equal(seen['x-real-ip'], undefined);
    assert.equal(seen.authorization, undefined);
    // 2026-07-28 routing headers pass through untouched.
    assert.equal(seen['mcp-method'], 'tools/call');
    assert.equal(seen['mcp-name'], 'search');
  });

  it('drops the headers Connection names and passes other end-to-end headers', async () => {
    const res = await raw(`${issuer}/echo`, {
      headers: {
        ...MCP_HEADERS,
        authorization: `Bearer ${await token(`${issuer}/echo`)}`,
        connection: 'keep-alive, x-hop-only',
        'x-hop-only': 'must not pass',
        'x-end-to-end': 'kept',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 8, method: 'tools/list' }),
    });
    assert.equal(res.status, 200, res.body);
    const seen = JSON.parse(res.body).result.headers as Record<string, string>;
    assert.equal(seen['x-hop-only'], undefined);
    assert.equal(seen['x-end-to-end'], 'kept');
  });

  it('names the public host in X-Forwarded-Host, not the Host the client sent', async () => {
    const res = await raw(`${issuer}/echo`, {
      headers: { ...MCP_HEADERS, host: 'evil.example', authorization: `Bearer ${await token(`${issuer}/echo`)}` },
      body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list' }),
    });
    assert.equal(res.status, 200, res.body);
    const seen = JSON.parse(res.body).result.headers as Record<string, string>;
    assert.equal(seen['x-forwarded-host'], `127.0.0.1:${port}`);
    assert.equal(seen['x-forwarded-proto'], 'http');
  });
});

describe('identity claims a client could forge', () => {
  it('strips the whole identity-header family, every configured name and the operator list, whatever this server sets', async () => {
    const forged = {
      'x-user-groups': 'admins', // the embedded default sets no groups header
      'x-user-email': 'root@example.com',
      'x-userinfo': 'e30',
      'x-alpha-email': 'root@example.com', // configured on another server only
      'remote-user': 'root',
      'remote-email': 'root@example.com',
      'remote-groups': 'admins',
      'remote-name': 'Root',
      'x-remote-user': 'root',
      'x-email': 'root@example.com',
      'x-auth-request-email': 'root@example.com',
      'x-auth-request-groups': 'admins',
      'x-forwarded-user': 'root',
      'x-forwarded-email': 'root@example.com',
      'x-forwarded-groups': 'admins',
      'x-forwarded-preferred-username': 'root',
      'x-webauth-user': 'root',
      'x-ms-client-principal-name': 'root',
      'x-ms-client-principal': 'e30',
      'x-goog-authenticated-user-email': 'accounts.google.com:root@example.com',
      'cf-access-authenticated-user-email': 'root@example.com',
      'x-amzn-oidc-identity': 'root',
      'x-pomerium-claim-email': 'root@example.com',
      'x-mcp-gateway-user': 'root',
      'x-acme-tenant': 'other', // stripClientHeaders: X-Acme-*
      'x-tenant': 'other', // stripClientHeaders: x-tenant
    };
    const res = await raw(`${issuer}/echo`, {
      headers: { ...MCP_HEADERS, ...forged, 'x-request-id': 'kept', authorization: `Bearer ${await token(`${issuer}/echo`)}` },
      body: JSON.stringify({ jsonrpc: '2.0', id: 6, method: 'tools/list' }),
    });
    assert.equal(res.status, 200, res.body);
    const seen = JSON.parse(res.body).result.headers as Record<string, string>;
    for (const name of Object.keys(forged)) assert.equal(seen[name], undefined, `${name} reached the upstream`);
    assert.equal(seen['x-user-id'], 'local:alice', "the gateway's own identity header still arrives");
    assert.equal(seen['x-request-id'], 'kept', 'other headers pass');
  });

  it('refuses stripClientHeaders entries that are no header names or would strip what MCP needs', () => {
    for (const entry of ['*', 'mcp-*', 'Accept', 'content-*', 'x user', '']) {
      const result = configSchema.safeParse({ stripClientHeaders: [entry] });
      assert.equal(result.success, false, entry);
      assert.deepEqual(result.error?.issues[0]?.path, ['stripClientHeaders', 0], entry);
    }
    assert.deepEqual(configSchema.parse({ stripClientHeaders: ['x-acme-*', 'X-Tenant'] }).stripClientHeaders, ['x-acme-*', 'X-Tenant']);
  });
});

describe('JSON-RPC body checks', () => {
  it('answers invalid JSON with -32700 and a non-message with -32600, without calling the upstream', async () => {
    const headers = { ...MCP_HEADERS, authorization: `Bearer ${await token(`${issuer}/echo`)}` };
    const before = echo.requests;
    const garbage = await raw(`${issuer}/echo`, { headers, body: '{"jsonrpc":"2.0",' });
    assert.equal(garbage.status, 400);
    assert.deepEqual(JSON.parse(garbage.body).error.code, -32700);
    const wrong = await raw(`${issuer}/echo`, { headers, body: JSON.stringify({ jsonrpc: '1.0', id: 9, method: 'x' }) });
    assert.equal(wrong.status, 400);
    assert.deepEqual(JSON.parse(wrong.body), { jsonrpc: '2.0', id: 9, error: { code: -32600, message: 'Invalid Request: "jsonrpc" must be "2.0"' } });
    const empty = await raw(`${issuer}/echo`, { headers, body: '[]' });
    assert.equal(JSON.parse(empty.body).error.code, -32600);
    assert.equal(echo.requests, before, 'the upstream never saw them');
    assert.ok(logLines.some((line) => line.includes('gateway.malformed_request')));
    // Well-formed messages, batches and a client's response to a server request pass.
    const batch = await raw(`${issuer}/echo`, { headers, body: JSON.stringify([{ jsonrpc: '2.0', id: 1, method: 'ping' }]) });
    assert.equal(batch.status, 200);
    const response = await raw(`${issuer}/echo`, { headers, body: JSON.stringify({ jsonrpc: '2.0', id: 'srv-1', result: {} }) });
    assert.equal(response.status, 200);
  });
});

describe('HTTP+SSE (2024-11-05) upstream', () => {
  it('carries an SDK SSE client session through the gateway, rewriting the endpoint', async () => {
    const bearer = await token(`${issuer}/legacy`);
    const endpoints: string[] = [];
    const transport = new SSEClientTransport(new URL(`${issuer}/legacy`), {
      requestInit: { headers: { authorization: `Bearer ${bearer}` } },
      eventSourceInit: {
        fetch: async (url, init) => {
          const headers = new Headers(init?.headers);
          headers.set('authorization', `Bearer ${bearer}`);
          const response = await fetch(url, { ...init, headers });
          return response;
        },
      },
    });
    const originalStart = transport.start.bind(transport);
    transport.start = async () => {
      await originalStart();
      endpoints.push(String((transport as unknown as { _endpoint?: URL })._endpoint));
    };
    const client = new Client({ name: 'legacy-client', version: '1.0.0' });
    await client.connect(transport);
    try {
      const result = await client.callTool({ name: 'shout', arguments: { text: 'hello' } });
      assert.deepEqual(result.content, [{ type: 'text', text: 'HELLO for local:alice' }]);
      assert.equal(endpoints.length, 1);
      const endpoint = new URL(endpoints[0]!);
      assert.equal(endpoint.origin, issuer, 'the client posts to the gateway, never to the upstream');
      assert.equal(endpoint.pathname, '/legacy/messages');
      assert.ok(legacy.sessions.has(endpoint.searchParams.get('sessionId') ?? ''));
    } finally {
      await client.close();
    }
  });

  it('challenges an unauthenticated GET and POST on the legacy route', async () => {
    assert.equal((await raw(`${issuer}/legacy`, { method: 'GET', headers: { accept: 'text/event-stream' } })).status, 401);
    assert.equal((await raw(`${issuer}/legacy/messages?sessionId=x`, { headers: MCP_HEADERS, body: INITIALIZE })).status, 401);
  });
});

describe('one failing upstream does not hold up the others', () => {
  it('answers 504 for the hanging upstream while another route answers at once', async () => {
    const slow = raw(`${issuer}/slow`, { headers: { ...MCP_HEADERS, authorization: `Bearer ${await token(`${issuer}/slow`)}` }, body: INITIALIZE });
    const started = Date.now();
    const quick = await raw(`${issuer}/echo`, { headers: { ...MCP_HEADERS, authorization: `Bearer ${await token(`${issuer}/echo`)}` }, body: INITIALIZE });
    assert.equal(quick.status, 200);
    assert.ok(Date.now() - started < 1_000, 'the healthy route answered while the slow one waited');
    const timedOut = await slow;
    assert.equal(timedOut.status, 504);
    assert.equal(JSON.parse(timedOut.body).error.code, -32001);
    assert.ok(logLines.some((line) => line.includes('"upstream":"slow"') && line.includes('timed out')));
  });
});

describe('a client vanishing mid-stream', () => {
  it('aborts the upstream request and logs it', async () => {
    const bearer = await token(`${issuer}/alpha`);
    const headers = { ...MCP_HEADERS, authorization: `Bearer ${bearer}` };
    const init = await raw(`${issuer}/alpha`, { headers, body: INITIALIZE });
    const sessionId = String(init.headers['mcp-session-id']);
    await raw(`${issuer}/alpha`, {
      headers: { ...headers, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18' },
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    });
    const controller = new AbortController();
    const stream = await fetch(`${issuer}/alpha`, {
      method: 'GET',
      headers: { accept: 'text/event-stream', authorization: `Bearer ${bearer}`, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18' },
      signal: controller.signal,
    });
    assert.equal(stream.status, 200);
    const before = logLines.length;
    controller.abort();
    const deadline = Date.now() + 5_000;
    while (!logLines.slice(before).some((line) => line.includes('upstream.client_aborted') && line.includes('"upstream":"alpha"'))) {
      assert.ok(Date.now() < deadline, 'the abort is logged');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // The gateway keeps serving.
    assert.equal((await raw(`${issuer}/alpha`, { headers, body: INITIALIZE })).status, 200);
  });
});

describe('SDK Streamable HTTP client on the host-routed server', () => {
  it('connects and calls a tool with the host-routed audience', async () => {
    // fetch sets Host from the URL, so the client uses the other host name directly.
    const bearer = await token(`http://${otherHost}/alpha`);
    const transport = new StreamableHTTPClientTransport(new URL(`http://${otherHost}/alpha`), {
      requestInit: { headers: { authorization: `Bearer ${bearer}` } },
    });
    const client = new Client({ name: 'hosted', version: '1' });
    await client.connect(transport);
    try {
      const echoed = await client.callTool({ name: 'echo', arguments: { text: 'via host' } });
      assert.deepEqual(echoed.content, [{ type: 'text', text: 'via host' }]);
    } finally {
      await client.close();
    }
  });
});
