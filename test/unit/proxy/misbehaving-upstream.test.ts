/**
 * Upstream MCP servers that misbehave on purpose, behind the real gateway on a real listener: one that
 * stalls in the middle of a JSON answer, one that answers HTML or broken JSON, one that dies (or just
 * stops) in the middle of an SSE answer, and an HTTP+SSE (2024-11-05) server that splits a UTF-8
 * character across two writes. Each is a plain `node:http` server, the clients are raw HTTP (for the
 * exact bytes) and the official MCP SDK client (for what a real client does with the answer). Nothing
 * sleeps: a stall is ended by the server's short configured idle timeout, and every wait is for a real
 * event with a deadline that only fails the test.
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import type { CryptoKey, JWK } from 'jose';
import { exportJWK, generateKeyPair } from 'jose';
import type { ServerConfig } from '../../../src/config/schema.ts';
import { configSchema } from '../../../src/config/schema.ts';
import { JsonRpcCode } from '../../../src/core/jsonrpc.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import type { ResourceServer } from '../../../src/resource-server/index.ts';
import { createResourceServer } from '../../../src/resource-server/index.ts';
import type { UserRecord } from '../../../src/storage/records.ts';
import { signAccessToken } from '../../support/access-tokens.ts';
import { closeServer } from '../../support/ports.ts';
import { postRaw, type RawResponse, readJsonBody } from '../../support/raw-http.ts';

// ---------------------------------------------------------------------------------------------------
// The rogue upstream: answers `initialize` and `notifications/initialized` like any MCP server (so the
// SDK client connects), refuses the optional GET stream with 405, and misbehaves on everything else in
// the way its path names.

interface Rogue {
  url: string;
  http: Server;
  /** `socket-closed` (path) when a connection the rogue held open was closed by the gateway. */
  events: EventEmitter;
  /** Lets the legacy stream write the second half of its split character. */
  releaseLegacy(): void;
}

const INIT_RESULT = { protocolVersion: '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'rogue', version: '1.0.0' } };

async function startRogue(): Promise<Rogue> {
  const events = new EventEmitter();
  let releaseLegacy: () => void = () => undefined;
  const http = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://rogue').pathname;
    if (path.startsWith('/legacy-dies/')) {
      legacyDies(req, res, path);
      return;
    }
    if (path === '/legacy/sse') {
      legacyStream(res, (release) => {
        releaseLegacy = release;
      });
      return;
    }
    if (req.method === 'GET') {
      res.writeHead(405, { allow: 'POST' }).end();
      return;
    }
    readJsonBody(req, (message) => {
      const one = Array.isArray(message) ? message[0] : message;
      if (one?.method === 'initialize') return json(res, 200, { jsonrpc: '2.0', id: one.id, result: INIT_RESULT });
      if (one?.method === 'notifications/initialized') return void res.writeHead(202).end();
      // A lenient server: notifications get a 200 with a word instead of MCP's 202 and no body.
      if (path === '/lenient' && one?.id === undefined) return void res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      misbehave(path, req, res, message, events);
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
    http,
    events,
    releaseLegacy: () => releaseLegacy(),
  };
}

// biome-ignore lint/suspicious/noExplicitAny: the rogue reads whatever JSON it is sent.
type Message = any;

function misbehave(path: string, req: IncomingMessage, res: ServerResponse, message: Message, events: EventEmitter): void {
  const id = Array.isArray(message) ? message[0]?.id : message?.id;
  switch (path) {
    case '/stall':
      // Headers and the start of a JSON answer, then nothing, for as long as the connection lasts.
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"jsonrpc":"2.0","id":');
      req.socket.once('close', () => events.emit('socket-closed', path));
      return;
    case '/big':
      // Larger than the gateway holds back: streamed on, in several writes.
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(`{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":{"content":[{"type":"text","text":"`);
      for (let i = 0; i < 6; i++) res.write('x'.repeat(256 * 1024));
      res.end('"}]}}');
      return;
    case '/html':
      res.writeHead(200, { 'content-type': 'text/html' }).end('<html><body>Proxy error: upstream at 10.1.2.3:8080 refused</body></html>');
      return;
    case '/broken-json':
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":');
      return;
    case '/not-jsonrpc':
      json(res, 200, { hello: 'world' });
      return;
    case '/rpc-error':
      // An upstream's own JSON-RPC error with an error status: passed on as it is.
      json(res, 400, { jsonrpc: '2.0', id, error: { code: -32602, message: 'Unknown tool: nope' } });
      return;
    case '/no-session':
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Session not found');
      return;
    case '/sse-dies':
    case '/sse-ends':
    case '/sse-resumable':
      sseWithoutAnswer(path, req, res, id);
      return;
    default:
      json(res, 200, { jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: 'fine' }] } });
  }
}

/** A progress notification, then the start of the answer, then the stream dies or ends: never the whole answer. */
function sseWithoutAnswer(path: string, req: IncomingMessage, res: ServerResponse, id: unknown): void {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  if (path === '/sse-resumable') res.write('id: ev-1\ndata: \n\n');
  res.write(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: id, progress: 1 } })}\n\n`);
  if (path === '/sse-ends') {
    res.end();
    return;
  }
  // Half an event, then the connection is reset: the answer never comes.
  res.write(`event: message\ndata: {"jsonrpc":"2.0","id":${JSON.stringify(id)},"resu`, () => req.socket.destroy());
}

/**
 * An HTTP+SSE server that answers `initialize` on its stream like the SDK's, then loses the stream
 * (connection reset) right after accepting a `tools/call`: its answer can never come.
 */
const legacyStreams = new Map<string, ServerResponse>();

function legacyDies(req: IncomingMessage, res: ServerResponse, path: string): void {
  if (req.method === 'GET' && path === '/legacy-dies/sse') {
    const session = `d${legacyStreams.size + 1}`;
    legacyStreams.set(session, res);
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(`event: endpoint\ndata: /legacy-dies/messages?sessionId=${session}\n\n`);
    return;
  }
  const stream = legacyStreams.get(new URL(req.url ?? '/', 'http://rogue').searchParams.get('sessionId') ?? '');
  readJsonBody(req, (message) => {
    res.writeHead(202).end('Accepted', () => {
      if (stream === undefined) return;
      if (message?.method === 'initialize')
        stream.write(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: message.id, result: INIT_RESULT })}\n\n`);
      if (message?.method === 'tools/call') stream.socket?.destroy();
    });
  });
}

/** An HTTP+SSE stream whose first event after `endpoint` has a UTF-8 character split across two writes. */
function legacyStream(res: ServerResponse, onRelease: (release: () => void) => void): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const text = Buffer.from('event: endpoint\ndata: /legacy/messages?sessionId=s1\n\nevent: message\ndata: {"text":"café ✓"}\n\n', 'utf8');
  // Cut inside the "é" (two bytes, 0xC3 0xA9): the first write ends with half a character.
  const cut = text.indexOf(0xc3) + 1;
  res.write(text.subarray(0, cut));
  onRelease(() => res.write(text.subarray(cut)));
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

// ---------------------------------------------------------------------------------------------------
// Raw HTTP against the gateway.

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

function call(id: number | string, name = 'anything'): string {
  return JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {} } });
}

// ---------------------------------------------------------------------------------------------------
// The gateway in front of the rogue.

let privateKey: CryptoKey;
let publicJwk: JWK;
let issuer: string;
let gateway: ResourceServer;
let gatewayHttp: Server;
let rogue: Rogue;
const logLines: Array<Record<string, unknown>> = [];

const ALICE: UserRecord = { id: 'local:alice', provider: 'local', subject: 'alice', email: 'alice@example.com', groups: [], createdAt: 0, lastLoginAt: 0 };

async function authorization(path: string): Promise<Record<string, string>> {
  const jwt = await signAccessToken(privateKey, {
    issuer,
    audience: `${issuer}${path}`,
    subject: ALICE.id,
    clientId: 'test-client',
    scope: '',
    kid: 'test-key',
  });
  return { authorization: `Bearer ${jwt}` };
}

async function post(path: string, body: string): Promise<RawResponse> {
  return postRaw(`${issuer}${path}`, { ...MCP_HEADERS, ...(await authorization(path)) }, body);
}

async function connectSdk(path: string): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(`${issuer}${path}`), { requestInit: { headers: await authorization(path) } });
  const client = new Client({ name: 'misbehaving-upstream-test', version: '1.0.0' });
  await client.connect(transport);
  return client;
}

/** The gateway still answers a normal request through the same rogue (it stayed up, its pool works). */
async function assertStillServing(): Promise<void> {
  const res = await post('/fine', call('after'));
  assert.equal(res.status, 200, res.body);
  assert.deepEqual(JSON.parse(res.body).result.content, [{ type: 'text', text: 'fine' }]);
}

before(async () => {
  const pair = await generateKeyPair('ES256');
  privateKey = pair.privateKey;
  publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'test-key', alg: 'ES256', use: 'sig' };
  rogue = await startRogue();

  gatewayHttp = createServer();
  await new Promise<void>((resolve) => gatewayHttp.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(gatewayHttp.address() as AddressInfo).port}`;

  const paths = ['fine', 'lenient', 'big', 'stall', 'html', 'broken-json', 'not-jsonrpc', 'rpc-error', 'no-session', 'sse-dies', 'sse-ends', 'sse-resumable'];
  const servers: ServerConfig[] = configSchema.parse({
    servers: [
      // A short idle timeout is what the stall test waits for; nothing else here pauses mid-body.
      ...paths.map((name) => ({ name, path: `/${name}`, upstream: { url: `${rogue.url}/${name}` }, upstreamBodyIdleTimeoutMs: 150 })),
      { name: 'legacy', path: '/legacy', upstream: { url: `${rogue.url}/legacy/sse`, transport: 'sse' } },
      { name: 'legacy-dies', path: '/legacy-dies', upstream: { url: `${rogue.url}/legacy-dies/sse`, transport: 'sse' } },
    ],
  }).servers!;

  gateway = createResourceServer({
    issuer,
    servers,
    publicKeys: () => [publicJwk],
    findUser: async (sub) => (sub === ALICE.id ? ALICE : undefined),
    logger: createLogger('info', {
      write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>),
    }),
  });
  gatewayHttp.on('request', (req, res) => {
    if (gateway.handle(req, res)) return;
    res.writeHead(404).end();
  });
});

after(async () => {
  await closeServer(gatewayHttp);
  await gateway.close();
  await closeServer(rogue.http);
});

/** pino's number for `warn`: misbehaving upstreams are the operator's to fix, not errors of the gateway. */
const WARN = 40;

function logged(event: string, upstream: string): Record<string, unknown> | undefined {
  return logLines.find((line) => line.event === event && line.upstream === upstream);
}

// ---------------------------------------------------------------------------------------------------

describe('an upstream that stalls in the middle of a JSON answer', () => {
  it('answers 504 with a JSON-RPC error for the request after the idle timeout and closes the upstream connection', async () => {
    const upstreamClosed = once(rogue.events, 'socket-closed');
    const res = await withTimeout(post('/stall', call('stall-1')), 5_000, 'the answer to a stalled request');
    assert.equal(res.status, 504);
    assert.equal(res.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(res.body), {
      jsonrpc: '2.0',
      id: 'stall-1',
      error: { code: JsonRpcCode.SERVER_TIMEOUT, message: 'Upstream MCP server "stall" is unavailable' },
    });
    assert.deepEqual(await withTimeout(upstreamClosed, 5_000, 'the upstream connection to close'), ['/stall']);
    assert.equal(logged('upstream.body_stalled', 'stall')?.level, WARN);
    await assertStillServing();
  });

  it('fails the SDK client request at once instead of after its own timeout', async () => {
    const client = await connectSdk('/stall');
    try {
      const error = await withTimeout(
        client.callTool({ name: 'anything', arguments: {} }).then(
          () => undefined,
          (caught: unknown) => caught,
        ),
        5_000,
        'the SDK call to fail',
      );
      assert.ok(error instanceof Error);
      // The SDK's StreamableHTTPError carries the HTTP status as its code, and the body in its message.
      assert.equal((error as Error & { code?: number }).code, 504);
      assert.match(error.message, new RegExp(`"code":${JsonRpcCode.SERVER_TIMEOUT}`));
    } finally {
      await client.close();
    }
  });
});

describe('an upstream whose answer is not what MCP allows', () => {
  it('answers 502 with a JSON-RPC error naming the request for HTML, broken JSON and JSON that is not JSON-RPC', async () => {
    for (const path of ['/html', '/broken-json', '/not-jsonrpc']) {
      const res = await post(path, call(`req${path}`));
      assert.equal(res.status, 502, path);
      assert.equal(res.headers['content-type'], 'application/json', path);
      assert.deepEqual(
        JSON.parse(res.body),
        {
          jsonrpc: '2.0',
          id: `req${path}`,
          error: { code: JsonRpcCode.UPSTREAM_INVALID_RESPONSE, message: `Upstream MCP server "${path.slice(1)}" sent a response that is not valid MCP` },
        },
        path,
      );
      assert.doesNotMatch(res.body, /10\.1\.2\.3|<html/, 'nothing of the broken answer reaches the client');
      assert.equal(logged('upstream.invalid_response', path.slice(1))?.level, WARN, path);
    }
    await assertStillServing();
  });

  it('answers a batch with one error per request', async () => {
    const batch = JSON.stringify([
      { jsonrpc: '2.0', id: 1, method: 'tools/list' },
      { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 1 } },
      { jsonrpc: '2.0', id: 'b', method: 'ping' },
    ]);
    const res = await post('/html', batch);
    assert.equal(res.status, 502);
    assert.deepEqual(
      JSON.parse(res.body).map((answer: { id: unknown; error: { code: number } }) => [answer.id, answer.error.code]),
      [
        [1, JsonRpcCode.UPSTREAM_INVALID_RESPONSE],
        ['b', JsonRpcCode.UPSTREAM_INVALID_RESPONSE],
      ],
    );
  });

  it("passes an upstream's own JSON-RPC error and its 404 for an unknown session on unchanged", async () => {
    const rpcError = await post('/rpc-error', call(42, 'nope'));
    assert.equal(rpcError.status, 400);
    assert.deepEqual(JSON.parse(rpcError.body), { jsonrpc: '2.0', id: 42, error: { code: -32602, message: 'Unknown tool: nope' } });
    const noSession = await post('/no-session', call(43));
    assert.equal(noSession.status, 404);
    assert.equal(noSession.body, 'Session not found');
  });

  it('streams an answer larger than it holds back, whole', async () => {
    const res = await post('/big', call('big-1'));
    assert.equal(res.status, 200);
    const answer = JSON.parse(res.body);
    assert.equal(answer.id, 'big-1');
    assert.equal(answer.result.content[0].text.length, 6 * 256 * 1024);
  });

  it('leaves the answer to a POST without requests alone, as clients do (nothing is owed to it)', async () => {
    const res = await post('/lenient', JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 1 } }));
    assert.equal(res.status, 200);
    assert.equal(res.body, 'ok');
  });

  it('fails the SDK client request with the status, not with a parse error on a 200', async () => {
    const client = await connectSdk('/html');
    try {
      await assert.rejects(client.callTool({ name: 'anything', arguments: {} }), (error: Error & { code?: number }) => {
        assert.equal(error.code, 502);
        assert.match(error.message, new RegExp(`"code":${JsonRpcCode.UPSTREAM_INVALID_RESPONSE}`));
        return true;
      });
    } finally {
      await client.close();
    }
  });
});

describe('an upstream that leaves an SSE answer unfinished', () => {
  for (const [path, what] of [
    ['/sse-dies', 'dies in the middle of an event'],
    ['/sse-ends', 'ends the stream cleanly'],
  ] as const) {
    it(`answers the SDK client's request with a JSON-RPC error when the upstream ${what}`, async () => {
      const client = await connectSdk(path);
      try {
        const progress: number[] = [];
        const error = await withTimeout(
          client.callTool({ name: 'anything', arguments: {} }, undefined, { onprogress: (event) => progress.push(event.progress) }).then(
            () => undefined,
            (caught: unknown) => caught,
          ),
          5_000,
          'the SDK call to fail (the SDK itself would wait 60 s)',
        );
        assert.ok(error instanceof McpError, String(error));
        assert.equal(error.code, JsonRpcCode.SERVER_UNAVAILABLE);
        assert.match(error.message, /upstream MCP server closed the stream before answering/);
        assert.deepEqual(progress, [1], 'what the upstream did send still arrived');
      } finally {
        await client.close();
      }
      assert.equal(logged('upstream.stream_unanswered', path.slice(1))?.level, WARN);
      await assertStillServing();
    });
  }

  it('finishes a half-received event as a discarded one before the error event, on the wire', async () => {
    const res = await post('/sse-dies', call('w-1'));
    assert.equal(res.status, 200);
    const events = res.body.split('\n\n');
    assert.match(events[0]!, /notifications\/progress/);
    assert.match(events[1]!, /^event: message\ndata: \{"jsonrpc":"2.0","id":"w-1","resu\nevent: gateway-discarded$/);
    assert.deepEqual(JSON.parse(events[2]!.replace('event: message\ndata: ', '')), {
      jsonrpc: '2.0',
      id: 'w-1',
      error: { code: JsonRpcCode.SERVER_UNAVAILABLE, message: 'upstream MCP server closed the stream before answering' },
    });
    assert.equal(events.length, 4, 'nothing after the error event');
  });

  it('adds nothing to a resumable stream: the client can resume it with Last-Event-ID', async () => {
    const res = await post('/sse-resumable', call('r-1'));
    assert.equal(res.status, 200);
    assert.doesNotMatch(res.body, /closed the stream before answering|gateway-discarded/);
  });
});

describe('an HTTP+SSE upstream that splits a UTF-8 character across two writes', () => {
  it('passes the character on whole while rewriting the endpoint event', async () => {
    const headers = await authorization('/legacy');
    const text = await withTimeout(
      new Promise<string>((resolve, reject) => {
        const req = httpRequest(`${issuer}/legacy`, { method: 'GET', headers: { ...headers, accept: 'text/event-stream' }, agent: false }, (res) => {
          assert.equal(res.statusCode, 200);
          // setEncoding decodes across chunks, so any damage seen here was done by the gateway.
          res.setEncoding('utf8');
          let received = '';
          let released = false;
          res.on('data', (chunk: string) => {
            received += chunk;
            // The first half has gone through the gateway on its own; only now does the second follow.
            if (!released && received.includes('sessionId=s1\n\n')) {
              released = true;
              rogue.releaseLegacy();
            }
            if (received.endsWith('"}\n\n')) {
              req.destroy();
              resolve(received);
            }
          });
          res.on('error', reject);
        });
        req.on('error', (error) => {
          if (!req.destroyed) reject(error);
        });
        req.end();
      }),
      5_000,
      'the legacy stream',
    );
    assert.equal(text, 'event: endpoint\ndata: /legacy/messages?sessionId=s1\n\nevent: message\ndata: {"text":"café ✓"}\n\n');
  });
});

describe('an HTTP+SSE upstream that loses its stream before answering', () => {
  it("answers the SDK SSE client's request with a JSON-RPC error on the stream before closing it", async () => {
    const headers = await authorization('/legacy-dies');
    const transport = new SSEClientTransport(new URL(`${issuer}/legacy-dies`), {
      requestInit: { headers },
      eventSourceInit: {
        fetch: (url, init) => {
          const withToken = new Headers(init?.headers);
          withToken.set('authorization', headers.authorization!);
          return fetch(url, { ...init, headers: withToken });
        },
      },
    });
    const client = new Client({ name: 'legacy-client', version: '1.0.0' });
    await client.connect(transport);
    try {
      const error = await withTimeout(
        client.callTool({ name: 'anything', arguments: {} }).then(
          () => undefined,
          (caught: unknown) => caught,
        ),
        5_000,
        'the SDK call to fail (the SDK itself would wait 60 s)',
      );
      assert.ok(error instanceof McpError, String(error));
      assert.equal(error.code, JsonRpcCode.SERVER_UNAVAILABLE);
      assert.match(error.message, /upstream MCP server closed the stream before answering/);
    } finally {
      await client.close();
    }
    assert.equal(logged('upstream.stream_unanswered', 'legacy-dies')?.level, WARN);
  });
});
