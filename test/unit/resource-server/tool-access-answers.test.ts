/**
 * `toolAccess` list answers from upstreams that misbehave, behind the real gateway on a real listener:
 * the list filter and the proxy's answer handling (src/proxy/upstream-response.ts, sse-watch.ts) are one
 * path, so a list answer is held, checked and filtered together, never streamed on unfiltered. Each
 * upstream is a plain `node:http` server (for exact bytes) and the client is raw HTTP. Nothing sleeps:
 * the stall is ended by the server's short configured idle timeout. Last, the screen and the per-call
 * step (rate limits, audit: src/resource-server/mcp-call.ts) on the same parse.
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import type { CryptoKey, JWK } from 'jose';
import { exportJWK, generateKeyPair } from 'jose';
import type { ServerConfig } from '../../../src/config/schema.ts';
import { configSchema } from '../../../src/config/schema.ts';
import { JsonRpcCode } from '../../../src/core/jsonrpc.ts';
import { createAuditLogger } from '../../../src/observability/audit.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import type { ResourceServer } from '../../../src/resource-server/index.ts';
import { createResourceServer } from '../../../src/resource-server/index.ts';
import { MemoryStorage } from '../../../src/storage/memory.ts';
import type { UserRecord } from '../../../src/storage/records.ts';
import { signAccessToken } from '../../support/access-tokens.ts';
import { closeServer } from '../../support/ports.ts';
import { postRaw, type RawResponse, readJsonBody } from '../../support/raw-http.ts';

const ALICE: UserRecord = { id: 'local:alice', provider: 'local', subject: 'alice', groups: [], createdAt: 0, lastLoginAt: 0 };

/** A tools/list result naming `echo` (allowed) and `secret` (hidden), padded with `padding` bytes of description. */
function listResult(padding = 0): unknown {
  return {
    tools: [
      { name: 'echo', description: 'x'.repeat(padding), inputSchema: { type: 'object' } },
      { name: 'secret', inputSchema: { type: 'object' } },
    ],
  };
}

/** What the upstream last received, by path. */
const seen = new Map<string, IncomingHttpHeaders>();

// biome-ignore lint/suspicious/noExplicitAny: the upstream reads whatever JSON it is sent.
type Message = any;

function answer(path: string, req: IncomingMessage, res: ServerResponse, message: Message): void {
  seen.set(path, req.headers);
  const id = Array.isArray(message) ? message[0]?.id : message?.id;
  switch (path) {
    case '/big-list': {
      // Past the 1 MiB an ordinary answer is held for (upstream-response.ts), in several writes.
      const text = JSON.stringify({ jsonrpc: '2.0', id, result: listResult(1536 * 1024) });
      res.writeHead(200, { 'content-type': 'application/json' });
      for (let at = 0; at < text.length; at += 256 * 1024) res.write(text.slice(at, at + 256 * 1024));
      res.end();
      return;
    }
    case '/huge-list': {
      // Past the 16 MiB a list answer may be held for filtering.
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(`{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":{"tools":[{"name":"secret","description":"`);
      const chunk = 'x'.repeat(1024 * 1024);
      let written = 0;
      const more = (): void => {
        while (written < 17) {
          written++;
          if (!res.write(chunk)) {
            res.once('drain', more);
            return;
          }
        }
        res.end('"}]}}');
      };
      res.on('error', () => undefined);
      more();
      return;
    }
    case '/odd-list':
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ tools: [{ name: 'secret' }] }));
      return;
    case '/stall-list':
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(`{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":{"tools":[{"name":"secret"`);
      return;
    case '/gzip-list':
      // Compressed although the gateway asked for `identity`.
      res
        .writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' })
        .end(gzipSync(JSON.stringify({ jsonrpc: '2.0', id, result: listResult() })));
      return;
    case '/sse-list': {
      // A batch of tools/list (id 1) and tools/call (id 2): the list answer comes in two writes, then the
      // connection is reset before the call is answered.
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const event = `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: 1, result: listResult() })}\n\n`;
      res.write(event.slice(0, 40));
      res.write(event.slice(40), () => req.socket.destroy());
      return;
    }
    case '/limited': {
      const text = JSON.stringify({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: 'ran' }] } });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
      return;
    }
    default:
      res.writeHead(404).end();
  }
}

let privateKey: CryptoKey;
let publicJwk: JWK;
let issuer: string;
let gateway: ResourceServer;
let gatewayHttp: Server;
let upstream: Server;
/** The audit stream's lines, as the gateway writes them. */
const auditLines: Array<Record<string, unknown>> = [];
const audited = new EventEmitter();

async function post(path: string, body: unknown, extra: Record<string, string> = {}): Promise<RawResponse> {
  const jwt = await signAccessToken(privateKey, { issuer, audience: `${issuer}${path}`, subject: ALICE.id, clientId: 'c1', scope: 'mcp', kid: 'k' });
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${jwt}`, ...extra };
  return postRaw(`${issuer}${path}`, headers, JSON.stringify(body));
}

const LIST = { jsonrpc: '2.0', id: 7, method: 'tools/list', params: {} };

before(async () => {
  const pair = await generateKeyPair('ES256');
  privateKey = pair.privateKey;
  publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'k', alg: 'ES256', use: 'sig' };
  upstream = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://upstream').pathname;
    readJsonBody(req, (message) => answer(path, req, res, message));
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  gatewayHttp = createServer();
  await new Promise<void>((resolve) => gatewayHttp.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(gatewayHttp.address() as AddressInfo).port}`;
  const paths = ['big-list', 'huge-list', 'odd-list', 'stall-list', 'gzip-list', 'sse-list', 'limited'];
  const servers: ServerConfig[] = configSchema.parse({
    servers: paths.map((name) => ({
      name,
      path: `/${name}`,
      upstream: { url: `${upstreamUrl}/${name}` },
      scopes: ['mcp'],
      // Only the stall waits for it; every other answer arrives without a pause.
      upstreamBodyIdleTimeoutMs: 150,
      toolAccess: { rules: [{ tools: ['echo'] }] },
      rateLimits: name === 'limited' ? [{ per: 'user', limit: 1, windowSeconds: 86_400 }] : [],
    })),
  }).servers as ServerConfig[];
  const audit = createAuditLogger('off', {
    write(line: string) {
      auditLines.push(JSON.parse(line) as Record<string, unknown>);
      audited.emit('line');
    },
  });
  gateway = createResourceServer({
    issuer,
    servers,
    publicKeys: () => [publicJwk],
    findUser: async () => ALICE,
    logger: createLogger('silent'),
    audit,
    rateLimitStorage: new MemoryStorage(),
  });
  gatewayHttp.on('request', (req, res) => {
    if (!gateway.handle(req, res)) res.writeHead(404).end();
  });
});

after(async () => {
  await closeServer(gatewayHttp);
  await gateway.close();
  await closeServer(upstream);
});

describe('toolAccess list answers on the proxy answer path', () => {
  it('a JSON list answer larger than the usual hold is still held whole and filtered, with its new length', async () => {
    const res = await post('/big-list', LIST);
    assert.equal(res.status, 200);
    assert.equal(Number(res.headers['content-length']), Buffer.byteLength(res.body));
    const answer = JSON.parse(res.body);
    assert.equal(answer.id, 7);
    assert.deepEqual(
      answer.result.tools.map((tool: { name: string }) => tool.name),
      ['echo'],
    );
  });

  it('a list answer past the filter limit fails closed with a JSON-RPC error: nothing of it reaches the client', async () => {
    const res = await post('/huge-list', LIST);
    assert.equal(res.status, 502);
    assert.doesNotMatch(res.body, /secret/);
    const error = JSON.parse(res.body);
    assert.equal(error.id, 7);
    assert.equal(error.error.code, JsonRpcCode.SERVER_UNAVAILABLE);
  });

  it('a list answer that is not JSON-RPC is refused by the answer check before any filtering', async () => {
    const res = await post('/odd-list', LIST);
    assert.equal(res.status, 502);
    assert.doesNotMatch(res.body, /secret/);
    assert.deepEqual(JSON.parse(res.body).error.code, JsonRpcCode.UPSTREAM_INVALID_RESPONSE);
  });

  it('a list answer that stalls ends with 504 after the idle limit, its start never sent', async () => {
    const res = await post('/stall-list', LIST);
    assert.equal(res.status, 504);
    assert.doesNotMatch(res.body, /secret/);
    const error = JSON.parse(res.body);
    assert.equal(error.id, 7);
    assert.equal(error.error.code, JsonRpcCode.SERVER_TIMEOUT);
  });

  it('a list answer is asked for uncompressed, and refused when it comes compressed anyway', async () => {
    const res = await post('/gzip-list', LIST, { 'accept-encoding': 'gzip, br' });
    assert.equal(seen.get('/gzip-list')?.['accept-encoding'], 'identity');
    assert.equal(res.status, 502);
    assert.equal(JSON.parse(res.body).error.code, JsonRpcCode.UPSTREAM_INVALID_RESPONSE);
  });

  it('SSE: the list answer reaches the client filtered, and only the request left unanswered gets an error event', async () => {
    const batch = [
      { jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} },
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: {} } },
    ];
    const res = await post('/sse-list', batch);
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-length'], undefined);
    const messages = res.body
      .split('\n\n')
      .filter((event) => event.includes('data: '))
      .map((event) => JSON.parse(event.slice(event.indexOf('data: ') + 6)));
    assert.equal(messages.length, 2, res.body);
    assert.equal(messages[0].id, 1);
    assert.deepEqual(
      messages[0].result.tools.map((tool: { name: string }) => tool.name),
      ['echo'],
    );
    assert.equal(messages[1].id, 2);
    assert.equal(messages[1].error.code, JsonRpcCode.SERVER_UNAVAILABLE);
  });

  it('a call the screen refuses spends no rate-limit budget, and its audit line says why', async () => {
    const call = (id: number, name: string) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {} } });
    const lineFor = async (id: number): Promise<Record<string, unknown>> => {
      const deadline = AbortSignal.timeout(5_000);
      for (;;) {
        const line = auditLines.find((entry) => entry.server === 'limited' && entry.rpcId === id);
        if (line !== undefined) return line;
        await once(audited, 'line', { signal: deadline });
      }
    };
    const refused = await post('/limited', call(1, 'secret'));
    assert.equal(JSON.parse(refused.body).error.code, JsonRpcCode.NOT_PERMITTED);
    const refusedLine = await lineFor(1);
    assert.equal(refusedLine.decision, 'denied');
    assert.equal(refusedLine.reason, 'tool_access');
    assert.equal(refusedLine.tool, 'secret');

    const allowed = await post('/limited', call(2, 'echo'));
    assert.equal(allowed.status, 200, 'the refused call left the one call of the budget');
    assert.equal((await lineFor(2)).decision, 'allowed');

    const limited = await post('/limited', call(3, 'echo'));
    assert.equal(limited.status, 429);
    assert.equal(JSON.parse(limited.body).error.code, JsonRpcCode.RATE_LIMITED);
    assert.equal((await lineFor(3)).reason, 'rate_limited');
  });
});
