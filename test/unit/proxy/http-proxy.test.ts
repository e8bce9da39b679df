/**
 * The gateway's resource-server side end to end, in process: a real `node:http` listener running the
 * gateway in front of real MCP servers built with the SDK (the shipped demo server and a "lab" server
 * with tools that let a test hold a stream open), driven by the SDK client and by raw HTTP.
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import type { IncomingHttpHeaders, Server } from 'node:http';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CryptoKey, JWK } from 'jose';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { z } from 'zod';
import type { ServerConfig } from '../../../src/config/schema.ts';
import { configSchema } from '../../../src/config/schema.ts';
import { JsonRpcCode } from '../../../src/core/jsonrpc.ts';
import type { DemoServer } from '../../../src/demo/server.ts';
import { startDemoServer } from '../../../src/demo/server.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import type { ResourceServer } from '../../../src/resource-server/index.ts';
import { createResourceServer } from '../../../src/resource-server/index.ts';
import type { UserRecord } from '../../../src/storage/records.ts';
import { answerStatelessly } from '../../support/stateless-mcp.ts';

// ---------------------------------------------------------------------------------------------------
// A lab MCP server (real SDK server, stateless Streamable HTTP) whose tools let tests observe streaming.

interface Lab {
  url: string;
  http: Server;
  events: EventEmitter;
  /** Opens the gate the `gated` tool waits on. */
  release(): void;
  secondSent: boolean;
  close(): Promise<void>;
}

async function startLab(options: { jsonResponse: boolean }): Promise<Lab> {
  const events = new EventEmitter();
  let openGate: () => void = () => undefined;
  const lab: Lab = {
    url: '',
    http: undefined as unknown as Server,
    events,
    release: () => openGate(),
    secondSent: false,
    close: async () => undefined,
  };

  function mcpServer(): McpServer {
    const server = new McpServer({ name: 'lab', version: '1.0.0' });
    server.registerTool('gated', { description: 'progress, wait for the test, then answer' }, async (extra) => {
      const gate = new Promise<void>((resolve) => {
        openGate = resolve;
      });
      await extra.sendNotification({
        method: 'notifications/progress',
        params: { progressToken: extra._meta?.progressToken ?? 0, progress: 1, message: 'first' },
      });
      await gate;
      lab.secondSent = true;
      return { content: [{ type: 'text', text: 'second' }] };
    });
    server.registerTool('hang', { description: 'never answers' }, async (extra) => {
      events.emit('hang-started');
      await new Promise<void>((resolve) => extra.signal.addEventListener('abort', () => resolve()));
      return { content: [] };
    });
    server.registerTool('sleep', { description: 'answers after ms', inputSchema: { ms: z.number() } }, async ({ ms }) => {
      await new Promise((resolve) => setTimeout(resolve, ms));
      return { content: [{ type: 'text', text: 'slept' }] };
    });
    return server;
  }

  const http = createServer((req, res) => {
    res.on('close', () => {
      if (!res.writableFinished) events.emit('upstream-request-aborted', req.method);
    });
    answerStatelessly(mcpServer(), req, res, { enableJsonResponse: options.jsonResponse });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  lab.http = http;
  lab.url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`;
  lab.close = () =>
    new Promise<void>((resolve) => {
      http.close(() => resolve());
      http.closeAllConnections();
    });
  return lab;
}

// ---------------------------------------------------------------------------------------------------
// Raw HTTP against the gateway, for what the SDK client hides (status lines, exact headers, aborts).

interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

function raw(url: string, options: { method?: string; headers?: Record<string, string>; body?: string | Buffer | Buffer[] } = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    // Host and port from the URL, the path exactly as written (URL parsing would resolve `..`).
    const parsed = new URL(url);
    const path = url.slice(parsed.origin.length) || '/';
    const req = httpRequest(
      { host: parsed.hostname, port: parsed.port, path, method: options.method ?? 'POST', headers: options.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    const body = options.body;
    if (Array.isArray(body)) {
      // Chunked upload: no content-length, one write per chunk.
      for (const chunk of body) req.write(chunk);
      req.end();
    } else {
      req.end(body);
    }
  });
}

const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

function jsonRpc(method: string, params: Record<string, unknown> = {}, id: number | string = 1): string {
  return JSON.stringify({ jsonrpc: '2.0', id, method, params });
}

const INITIALIZE = jsonRpc('initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } });

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------------
// The harness: keys, users, the gateway on a real listener, the upstreams.

let privateKey: CryptoKey;
let publicJwk: JWK;
let issuer: string;
let gateway: ResourceServer;
let gatewayHttp: Server;
let demo: DemoServer;
let lab: Lab;
let labJson: Lab;
const logLines: string[] = [];
let findUserCalls = 0;

const ALICE: UserRecord = {
  id: 'local:alice',
  provider: 'local',
  subject: 'alice',
  email: 'alice@example.com',
  name: 'Zoë Alice',
  groups: ['eng', 'ops,admin'],
  createdAt: 0,
  lastLoginAt: 0,
};

async function token(path: string, options: { scope?: string; sub?: string } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ client_id: 'test-client', scope: options.scope ?? 'mcp:tools' })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'test-key' })
    .setIssuer(issuer)
    .setAudience(`${issuer}${path}`)
    .setSubject(options.sub ?? ALICE.id)
    .setIssuedAt(now)
    .setExpirationTime(now + 300)
    .sign(privateKey);
}

async function connectClient(path: string, headers: Record<string, string>): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(`${issuer}${path}`), { requestInit: { headers } });
  const client = new Client({ name: 'gateway-test', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport };
}

before(async () => {
  const pair = await generateKeyPair('ES256');
  privateKey = pair.privateKey;
  publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'test-key', alg: 'ES256', use: 'sig' };

  demo = await startDemoServer({ host: '127.0.0.1', port: 0 });
  lab = await startLab({ jsonResponse: false });
  labJson = await startLab({ jsonResponse: true });
  // A port that was just free and is closed again: connections are refused.
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const downPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));

  gatewayHttp = createServer();
  await new Promise<void>((resolve) => gatewayHttp.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(gatewayHttp.address() as AddressInfo).port}`;

  const servers: ServerConfig[] = configSchema.parse({
    servers: [
      {
        name: 'demo',
        path: '/mcp',
        upstream: { builtin: 'demo' },
        scopes: ['mcp:tools', 'offline_access'],
        identityHeaders: { subject: 'x-user-id', email: 'x-user-email', name: 'x-user-name', groups: 'x-user-groups' },
        allowedOrigins: ['https://inspector.example'],
        maxRequestBytes: 8192,
      },
      { name: 'lab', path: '/lab', upstream: { url: lab.url }, upstreamTimeoutMs: 2000 },
      { name: 'lab-json', path: '/lab-json', upstream: { url: labJson.url }, upstreamTimeoutMs: 300 },
      { name: 'down', path: '/down', upstream: { url: `http://127.0.0.1:${downPort}/mcp` } },
    ],
  }).servers!;

  const logger = createLogger('warn', { write: (line: string) => void logLines.push(line) });
  gateway = createResourceServer({
    issuer,
    servers,
    publicKeys: () => [publicJwk],
    findUser: async (sub) => {
      findUserCalls++;
      return sub === ALICE.id ? ALICE : undefined;
    },
    logger,
    upstreams: {
      get: (name) => {
        const server = servers.find((s) => s.name === name);
        return { url: server && 'url' in server.upstream ? server.upstream.url : demo.url, transport: 'streamable-http' };
      },
      close: async () => {},
    },
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
  await lab.close();
  await labJson.close();
});

// ---------------------------------------------------------------------------------------------------

describe('protected resource metadata (RFC 9728)', () => {
  it('is served path-inserted and at the root, with CORS for browser clients', async () => {
    for (const path of ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource']) {
      const res = await raw(`${issuer}${path}`, { method: 'GET' });
      assert.equal(res.status, 200, path);
      assert.equal(res.headers['access-control-allow-origin'], '*');
      assert.match(String(res.headers['content-type']), /^application\/json/);
      assert.deepEqual(JSON.parse(res.body), {
        resource: `${issuer}/mcp`,
        authorization_servers: [issuer],
        scopes_supported: ['mcp:tools'],
        bearer_methods_supported: ['header'],
        resource_name: 'demo',
      });
    }
    const lab = JSON.parse((await raw(`${issuer}/.well-known/oauth-protected-resource/lab`, { method: 'GET' })).body);
    assert.equal(lab.resource, `${issuer}/lab`);
    assert.deepEqual(lab.scopes_supported, []);
  });

  it('answers a preflight and leaves unknown paths to the caller', async () => {
    const preflight = await raw(`${issuer}/.well-known/oauth-protected-resource/mcp`, {
      method: 'OPTIONS',
      headers: { origin: 'http://localhost:6274', 'access-control-request-method': 'GET' },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers['access-control-allow-origin'], '*');
    assert.equal((await raw(`${issuer}/.well-known/oauth-protected-resource/nope`, { method: 'GET' })).status, 404);
    assert.equal((await raw(`${issuer}/elsewhere`, { method: 'GET' })).status, 404);
    assert.equal((await raw(`${issuer}/mcpx`, { method: 'GET' })).status, 404, 'a route matches on whole path segments');
  });
});

describe('token checks and challenges', () => {
  it('answers a request without a token with 401 and the exact challenge', async () => {
    const res = await raw(`${issuer}/mcp`, { headers: MCP_HEADERS, body: INITIALIZE });
    assert.equal(res.status, 401);
    assert.equal(res.headers['www-authenticate'], `Bearer resource_metadata="${issuer}/.well-known/oauth-protected-resource/mcp", scope="mcp:tools"`);
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.equal(JSON.parse(res.body).error, 'invalid_token');
  });

  it('answers HEAD without a token with the challenge (Gemini CLI probes HEAD first), with a token 405', async () => {
    const bare = await raw(`${issuer}/mcp`, { method: 'HEAD' });
    assert.equal(bare.status, 401);
    assert.equal(bare.headers['www-authenticate'], `Bearer resource_metadata="${issuer}/.well-known/oauth-protected-resource/mcp", scope="mcp:tools"`);
    assert.equal(bare.body, '', 'HEAD has no body');
    const authorized = await raw(`${issuer}/mcp`, { method: 'HEAD', headers: { authorization: `Bearer ${await token('/mcp')}` } });
    assert.equal(authorized.status, 405, 'MCP defines no HEAD: never forwarded upstream');
    assert.match(String(authorized.headers.allow), /POST/);
  });

  it('omits scope from the challenge of a server without scopes', async () => {
    const res = await raw(`${issuer}/lab`, { headers: MCP_HEADERS, body: INITIALIZE });
    assert.equal(res.status, 401);
    assert.equal(res.headers['www-authenticate'], `Bearer resource_metadata="${issuer}/.well-known/oauth-protected-resource/lab"`);
  });

  it('refuses a token issued for another MCP server', async () => {
    const res = await raw(`${issuer}/mcp`, { headers: { ...MCP_HEADERS, authorization: `Bearer ${await token('/lab')}` }, body: INITIALIZE });
    assert.equal(res.status, 401);
    assert.equal(
      res.headers['www-authenticate'],
      `Bearer error="invalid_token", error_description="The access token was not issued for this MCP server.", resource_metadata="${issuer}/.well-known/oauth-protected-resource/mcp", scope="mcp:tools"`,
    );
  });

  it('refuses a forged token', async () => {
    const stranger = await generateKeyPair('ES256');
    const now = Math.floor(Date.now() / 1000);
    const forged = await new SignJWT({ client_id: 'x', scope: 'mcp:tools' })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'test-key' })
      .setIssuer(issuer)
      .setAudience(`${issuer}/mcp`)
      .setSubject(ALICE.id)
      .setExpirationTime(now + 60)
      .sign(stranger.privateKey);
    const res = await raw(`${issuer}/mcp`, { headers: { ...MCP_HEADERS, authorization: `Bearer ${forged}` }, body: INITIALIZE });
    assert.equal(res.status, 401);
    assert.match(String(res.headers['www-authenticate']), /^Bearer error="invalid_token"/);
  });

  it('answers missing scope with 403 insufficient_scope listing every scope needed', async () => {
    const res = await raw(`${issuer}/mcp`, {
      headers: { ...MCP_HEADERS, authorization: `Bearer ${await token('/mcp', { scope: 'other' })}` },
      body: INITIALIZE,
    });
    assert.equal(res.status, 403);
    assert.equal(
      res.headers['www-authenticate'],
      `Bearer error="insufficient_scope", scope="mcp:tools", resource_metadata="${issuer}/.well-known/oauth-protected-resource/mcp"`,
    );
    assert.equal(JSON.parse(res.body).error, 'insufficient_scope');
  });

  it('refuses a token in the query string, even with a valid header', async () => {
    const valid = await token('/mcp');
    for (const headers of [MCP_HEADERS, { ...MCP_HEADERS, authorization: `Bearer ${valid}` }]) {
      const res = await raw(`${issuer}/mcp?access_token=${valid}`, { headers, body: INITIALIZE });
      assert.equal(res.status, 400);
      assert.match(String(res.headers['www-authenticate']), /^Bearer error="invalid_request"/);
      assert.match(String(res.headers['www-authenticate']), /resource_metadata="/);
    }
  });

  it('refuses a token whose user no longer exists', async () => {
    const res = await raw(`${issuer}/mcp`, {
      headers: { ...MCP_HEADERS, authorization: `Bearer ${await token('/mcp', { sub: 'local:ghost' })}` },
      body: INITIALIZE,
    });
    assert.equal(res.status, 401);
  });
});

describe('origin checks (DNS-rebinding protection)', () => {
  it('refuses a foreign Origin with 403', async () => {
    const res = await raw(`${issuer}/mcp`, {
      headers: { ...MCP_HEADERS, origin: 'https://evil.example', authorization: `Bearer ${await token('/mcp')}` },
      body: INITIALIZE,
    });
    assert.equal(res.status, 403);
    assert.equal(JSON.parse(res.body).error.message, 'Origin not allowed');
    assert.equal(res.headers['access-control-allow-origin'], undefined);
  });

  it('lets an allowed origin through with CORS headers exposing the session id and challenge', async () => {
    const preflight = await raw(`${issuer}/mcp`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://inspector.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type, mcp-protocol-version',
      },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers['access-control-allow-origin'], 'https://inspector.example');
    assert.match(String(preflight.headers['access-control-allow-methods']), /POST/);

    const unauthenticated = await raw(`${issuer}/mcp`, { headers: { ...MCP_HEADERS, origin: 'https://inspector.example' }, body: INITIALIZE });
    assert.equal(unauthenticated.status, 401);
    assert.equal(unauthenticated.headers['access-control-allow-origin'], 'https://inspector.example');
    assert.match(String(unauthenticated.headers['access-control-expose-headers']), /www-authenticate/);

    const res = await raw(`${issuer}/mcp`, {
      headers: { ...MCP_HEADERS, origin: 'https://inspector.example', authorization: `Bearer ${await token('/mcp')}` },
      body: INITIALIZE,
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers['access-control-allow-origin'], 'https://inspector.example');
    assert.match(String(res.headers['access-control-expose-headers']), /mcp-session-id/);
    assert.ok(res.headers['mcp-session-id']);
  });

  it('allows the gateway its own origin', async () => {
    const res = await raw(`${issuer}/mcp`, { headers: { ...MCP_HEADERS, origin: issuer, authorization: `Bearer ${await token('/mcp')}` }, body: INITIALIZE });
    assert.equal(res.status, 200);
  });
});

describe('proxying to the demo MCP server with the SDK client', () => {
  it('lists and calls tools, hands over identity and never the token', async () => {
    const bearer = await token('/mcp');
    const callsBefore = findUserCalls;
    const { client, transport } = await connectClient('/mcp', {
      Authorization: `Bearer ${bearer}`,
      // A client trying to claim someone else's identity, and a cookie that must not reach the upstream.
      'X-User-Email': 'mallory@evil.example',
      Cookie: 'gateway_session=secret',
    });
    try {
      const tools = await client.listTools();
      assert.deepEqual(tools.tools.map((tool) => tool.name).sort(), ['echo', 'slow_count', 'whoami']);

      const echo = await client.callTool({ name: 'echo', arguments: { text: 'hello through the gateway' } });
      assert.deepEqual(echo.content, [{ type: 'text', text: 'hello through the gateway' }]);

      const whoami = await client.callTool({ name: 'whoami', arguments: {} });
      const report = JSON.parse((whoami.content as Array<{ text: string }>)[0]!.text);
      assert.deepEqual(report.identity, {
        'x-user-id': 'local:alice',
        'x-user-email': 'alice@example.com',
        'x-user-name': 'Zo%C3%AB Alice',
        'x-user-groups': 'eng,ops%2Cadmin',
        // The gateway's own forwarding headers (the client's are never passed on).
        'x-forwarded-for': '127.0.0.1',
        'x-forwarded-host': new URL(issuer).host,
        'x-forwarded-proto': 'http',
      });
      assert.equal(report.authorizationHeaderPresent, false);
      assert.equal(report.cookieHeaderPresent, false);

      // The user was read once for this token, however many requests it carried.
      assert.equal(findUserCalls - callsBefore, 1);

      // DELETE ends the session upstream (MCP Transports, "Session Management").
      await transport.terminateSession();
      assert.equal(transport.sessionId, undefined);
    } finally {
      await client.close();
    }
  });

  it('streams progress notifications of slow_count as they are produced', async () => {
    const { client } = await connectClient('/mcp', { Authorization: `Bearer ${await token('/mcp')}` });
    try {
      const progress: number[] = [];
      const result = await client.callTool({ name: 'slow_count', arguments: { count: 3, intervalMs: 20 } }, undefined, {
        onprogress: (event) => progress.push(event.progress),
      });
      assert.deepEqual(progress, [1, 2, 3]);
      assert.deepEqual(result.content, [{ type: 'text', text: 'Counted to 3.' }]);
    } finally {
      await client.close();
    }
  });
});

/** Opens a demo session with raw HTTP and returns its id (initialize + initialized, as the spec orders). */
async function rawSession(path: string, headers: Record<string, string>): Promise<string> {
  const init = await raw(`${issuer}${path}`, { headers: { ...MCP_HEADERS, ...headers }, body: INITIALIZE });
  assert.equal(init.status, 200, init.body);
  const sessionId = String(init.headers['mcp-session-id']);
  const initialized = await raw(`${issuer}${path}`, {
    headers: { ...MCP_HEADERS, ...headers, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18' },
    body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
  });
  assert.equal(initialized.status, 202);
  return sessionId;
}

/** The JSON-RPC message carried by a single-event SSE body (or a plain JSON body). */
function messageFrom(body: string): { result?: { content?: Array<{ text: string }> } } {
  const data = /^data: (.*)$/m.exec(body);
  return JSON.parse(data ? data[1]! : body);
}

describe('streaming proxy behaviour', () => {
  it('delivers an SSE event before the upstream produces the next one (no buffering)', async () => {
    const { client } = await connectClient('/lab', { Authorization: `Bearer ${await token('/lab')}` });
    try {
      lab.secondSent = false;
      let secondSentWhenFirstArrived: boolean | undefined;
      // The upstream sends the first event, then waits until this client has seen it. A gateway that
      // held the stream back would deadlock here, and the timeout would fail the test.
      const result = await withTimeout(
        client.callTool({ name: 'gated', arguments: {} }, undefined, {
          onprogress: () => {
            secondSentWhenFirstArrived = lab.secondSent;
            lab.release();
          },
        }),
        5_000,
        'the first SSE event to reach the client',
      );
      assert.equal(secondSentWhenFirstArrived, false);
      assert.deepEqual(result.content, [{ type: 'text', text: 'second' }]);
    } finally {
      await client.close();
    }
  });

  it('sends the headers of a GET SSE stream before any event exists', async () => {
    const authorization = `Bearer ${await token('/mcp')}`;
    const sessionId = await rawSession('/mcp', { authorization });
    const controller = new AbortController();
    try {
      // The demo server sends nothing on its standalone stream; a gateway that waited for the first
      // chunk before writing the headers would leave the client hanging here.
      const res = await withTimeout(
        fetch(`${issuer}/mcp`, {
          method: 'GET',
          headers: { accept: 'text/event-stream', authorization, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18' },
          signal: controller.signal,
        }),
        3_000,
        'the SSE response headers',
      );
      assert.equal(res.status, 200);
      assert.match(String(res.headers.get('content-type')), /^text\/event-stream/);
    } finally {
      controller.abort();
    }
  });

  it('drops hop-by-hop headers, including those named by Connection, and serves /path/ like /path', async () => {
    const authorization = `Bearer ${await token('/mcp')}`;
    const sessionId = await rawSession('/mcp/', { authorization });
    const res = await raw(`${issuer}/mcp/`, {
      headers: {
        ...MCP_HEADERS,
        authorization,
        'mcp-session-id': sessionId,
        'mcp-protocol-version': '2025-06-18',
        connection: 'keep-alive, x-user-hop',
        'x-user-hop': 'must not pass',
        'x-user-kept': 'end-to-end',
        'x-forwarded-proto': 'https',
      },
      body: jsonRpc('tools/call', { name: 'whoami', arguments: {} }, 11),
    });
    assert.equal(res.status, 200);
    const report = JSON.parse(messageFrom(res.body).result!.content![0]!.text);
    assert.equal(report.identity['x-user-hop'], undefined);
    // x-user-* is an identity claim a client could forge: never passed on (src/resource-server/forgeable-headers.ts).
    // Connection-named headers against end-to-end ones: test/unit/resource-server/routing.test.ts.
    assert.equal(report.identity['x-user-kept'], undefined);
    assert.equal(report.identity['x-forwarded-proto'], 'http', "a client-sent X-Forwarded-* is replaced by the gateway's");
    assert.equal(report.identity['x-user-email'], 'alice@example.com');
  });

  it('aborts the upstream request when the client disconnects', async () => {
    const bearer = await token('/lab');
    const started = once(lab.events, 'hang-started');
    // Other tests' SDK clients also close GET streams; wait for the aborted POST specifically.
    const aborted = new Promise<string>((resolve) => {
      const listener = (method: string): void => {
        if (method !== 'POST') return;
        lab.events.off('upstream-request-aborted', listener);
        resolve(method);
      };
      lab.events.on('upstream-request-aborted', listener);
    });
    const req = httpRequest(`${issuer}/lab`, { method: 'POST', headers: { ...MCP_HEADERS, authorization: `Bearer ${bearer}` }, agent: false });
    req.on('error', () => undefined);
    req.end(jsonRpc('tools/call', { name: 'hang', arguments: {} }, 7));
    await withTimeout(started, 5_000, 'the upstream tool to start');
    req.destroy();
    const method = await withTimeout(aborted, 5_000, 'the upstream to see its request closed');
    assert.equal(method, 'POST');
  });

  it('ends the client SSE stream when the upstream dies mid-response, logs it, and keeps serving', async () => {
    const bearer = await token('/lab');
    const started = once(lab.events, 'hang-started');
    const response = fetch(`${issuer}/lab`, {
      method: 'POST',
      headers: { ...MCP_HEADERS, authorization: `Bearer ${bearer}` },
      body: jsonRpc('tools/call', { name: 'hang', arguments: {} }, 8),
    });
    await withTimeout(started, 5_000, 'the upstream tool to start');
    const res = await response;
    assert.equal(res.status, 200);
    assert.match(String(res.headers.get('content-type')), /text\/event-stream/);
    lab.http.closeAllConnections();
    // An SSE stream ends cleanly (a half-sent event is discarded by the client's parser).
    await withTimeout(res.text(), 5_000, 'the broken stream to end');
    assert.ok(
      logLines.some((line) => line.includes('upstream.stream_broken') && line.includes('"upstream":"lab"')),
      'the break is logged',
    );
    const after = await raw(`${issuer}/.well-known/oauth-protected-resource/lab`, { method: 'GET' });
    assert.equal(after.status, 200);
  });

  it('answers 502 with a JSON-RPC error when the upstream is down, then serves the next request', async () => {
    const res = await raw(`${issuer}/down`, { headers: { ...MCP_HEADERS, authorization: `Bearer ${await token('/down')}` }, body: INITIALIZE });
    assert.equal(res.status, 502);
    assert.deepEqual(JSON.parse(res.body), {
      jsonrpc: '2.0',
      id: 1,
      error: { code: JsonRpcCode.SERVER_UNAVAILABLE, message: 'Upstream MCP server "down" is unavailable' },
    });
    assert.ok(
      logLines.some((line) => line.includes('"upstream":"down"') && line.includes('ECONNREFUSED')),
      'the failure is logged with detail',
    );

    const next = await raw(`${issuer}/mcp`, { headers: { ...MCP_HEADERS, authorization: `Bearer ${await token('/mcp')}` }, body: INITIALIZE });
    assert.equal(next.status, 200);
  });

  it('answers 504 when the upstream sends no response headers in time', async () => {
    const res = await raw(`${issuer}/lab-json`, {
      headers: { ...MCP_HEADERS, authorization: `Bearer ${await token('/lab-json')}` },
      body: jsonRpc('tools/call', { name: 'sleep', arguments: { ms: 1_500 } }, 'req-9'),
    });
    assert.equal(res.status, 504);
    const body = JSON.parse(res.body);
    assert.equal(body.error.code, JsonRpcCode.SERVER_TIMEOUT);
    assert.equal(body.error.message, 'Upstream MCP server "lab-json" is unavailable');
    assert.equal(body.id, 'req-9', 'the request the client sent is named');
  });

  it('does not apply the response timeout to a quick answer', async () => {
    const res = await raw(`${issuer}/lab-json`, {
      headers: { ...MCP_HEADERS, authorization: `Bearer ${await token('/lab-json')}` },
      body: jsonRpc('tools/call', { name: 'sleep', arguments: { ms: 10 } }, 3),
    });
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.body).result.content[0].text, 'slept');
  });

  it('answers 413 to a body over maxRequestBytes, declared or chunked', async () => {
    const headers = { ...MCP_HEADERS, authorization: `Bearer ${await token('/mcp')}` };
    const declared = await raw(`${issuer}/mcp`, { headers, body: Buffer.alloc(9_000, 0x20) });
    assert.equal(declared.status, 413);
    assert.equal(JSON.parse(declared.body).error.code, JsonRpcCode.REQUEST_TOO_LARGE);
    assert.equal(declared.headers.connection, 'close');

    const chunked = await raw(`${issuer}/mcp`, { headers, body: [Buffer.alloc(4_096, 0x20), Buffer.alloc(4_096, 0x20), Buffer.alloc(4_096, 0x20)] });
    assert.equal(chunked.status, 413);
    assert.equal(JSON.parse(chunked.body).error.code, JsonRpcCode.REQUEST_TOO_LARGE);

    // A chunked body under the limit streams through.
    const small = await raw(`${issuer}/mcp`, { headers, body: [Buffer.from(INITIALIZE.slice(0, 20)), Buffer.from(INITIALIZE.slice(20))] });
    assert.equal(small.status, 200);
  });

  it('answers malformed JSON-RPC itself, with the same rules as the stdio bridge (id null is no request id)', async () => {
    const headers = { ...MCP_HEADERS, authorization: `Bearer ${await token('/mcp')}` };
    const notJson = await raw(`${issuer}/mcp`, { headers, body: '{"jsonrpc":' });
    assert.equal(notJson.status, 400);
    assert.equal(JSON.parse(notJson.body).error.code, JsonRpcCode.PARSE_ERROR);
    const nullId = await raw(`${issuer}/mcp`, { headers, body: '{"jsonrpc":"2.0","id":null,"method":"ping"}' });
    assert.equal(nullId.status, 400);
    assert.deepEqual(JSON.parse(nullId.body), {
      jsonrpc: '2.0',
      id: null,
      error: { code: JsonRpcCode.INVALID_REQUEST, message: 'Invalid Request: a request "id" must be a string or an integer, never null' },
    });
    const badVersion = await raw(`${issuer}/mcp`, { headers, body: '{"jsonrpc":"1.0","id":"r7","method":"ping"}' });
    assert.deepEqual(JSON.parse(badVersion.body).id, 'r7', 'the id is named when it could be read');
  });

  it('refuses methods MCP does not use and paths that climb out of the route', async () => {
    const headers = { authorization: `Bearer ${await token('/mcp')}` };
    const put = await raw(`${issuer}/mcp`, { method: 'PUT', headers, body: '{}' });
    assert.equal(put.status, 405);
    assert.match(String(put.headers.allow), /POST/);
    const climb = await raw(`${issuer}/mcp/%2e%2e/admin`, { method: 'GET', headers });
    assert.equal(climb.status, 400);
  });
});
