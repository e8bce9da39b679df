/**
 * `toolAccess` on the proxy path with a JSON-answering upstream (a real SDK server, stateless, with
 * `enableJsonResponse`): the held-and-filtered JSON list answer, and the request screen that no body
 * shape gets around (chunked, larger than the small-body check, sent as text/plain).
 */
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK } from 'jose';
import { configSchema, type ServerConfig } from '../../../src/config/schema.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { createResourceServer, type ResourceServer } from '../../../src/resource-server/index.ts';
import type { UserRecord } from '../../../src/storage/records.ts';
import { signAccessToken } from '../../support/access-tokens.ts';
import { answerStatelessly } from '../../support/stateless-mcp.ts';

const ALICE: UserRecord = { id: 'local:alice', provider: 'local', subject: 'alice', groups: [], createdAt: 0, lastLoginAt: 0 };

let upstream: Server;
let gatewayHttp: Server;
let gateway: ResourceServer;
let issuer: string;
let privateKey: CryptoKey;
let publicJwk: JWK;
/** Tool calls the upstream actually ran. */
const ran: string[] = [];

async function token(): Promise<string> {
  return signAccessToken(privateKey, { issuer, audience: `${issuer}/mcp`, subject: ALICE.id, clientId: 'c1', scope: 'mcp', kid: 'k' });
}

/** A POST to the gateway with full control of framing: chunks are written one by one (chunked encoding). */
function send(body: string | string[], headers: Record<string, string>): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${issuer}/mcp`, { method: 'POST', headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    if (Array.isArray(body)) for (const chunk of body) req.write(chunk);
    else req.write(body);
    req.end();
  });
}

before(async () => {
  const pair = await generateKeyPair('ES256');
  privateKey = pair.privateKey;
  publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'k', alg: 'ES256', use: 'sig' };
  upstream = createServer((req, res) => {
    const server = new McpServer({ name: 'json-lab', version: '1.0.0' });
    for (const name of ['echo', 'write', 'secret']) {
      server.registerTool(name, { description: name }, async () => {
        ran.push(name);
        return { content: [{ type: 'text', text: name }] };
      });
    }
    answerStatelessly(server, req, res, { enableJsonResponse: true });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  gatewayHttp = createServer();
  await new Promise<void>((resolve) => gatewayHttp.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(gatewayHttp.address() as AddressInfo).port}`;
  const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp`;
  const servers: ServerConfig[] = configSchema.parse({
    servers: [
      {
        name: 'lab',
        path: '/mcp',
        upstream: { url: upstreamUrl },
        scopes: ['mcp'],
        toolAccess: { rules: [{ tools: ['echo'] }, { tools: ['write'], scopes: ['lab:write'] }] },
      },
    ],
  }).servers as ServerConfig[];
  gateway = createResourceServer({ issuer, servers, publicKeys: () => [publicJwk], findUser: async () => ALICE, logger: createLogger('silent') });
  gatewayHttp.on('request', (req, res) => {
    if (!gateway.handle(req, res)) res.writeHead(404).end();
  });
});

after(async () => {
  gatewayHttp.closeAllConnections();
  await new Promise<void>((resolve) => gatewayHttp.close(() => resolve()));
  await gateway.close();
  upstream.closeAllConnections();
  await new Promise<void>((resolve) => upstream.close(() => resolve()));
});

describe('toolAccess through the proxy, JSON answers', () => {
  it('the SDK client sees only the tools it may use, and can call them', async () => {
    const transport = new StreamableHTTPClientTransport(new URL(`${issuer}/mcp`), { requestInit: { headers: { authorization: `Bearer ${await token()}` } } });
    const client = new Client({ name: 'lab-client', version: '1.0.0' });
    await client.connect(transport);
    try {
      assert.deepEqual(
        (await client.listTools()).tools.map((tool) => tool.name),
        ['echo'],
      );
      assert.deepEqual((await client.callTool({ name: 'echo', arguments: {} })).content, [{ type: 'text', text: 'echo' }]);
    } finally {
      await client.close();
    }
  });

  it('no body shape gets a forbidden call past the screen: chunked, padded past 64 KiB, or not labelled JSON', async () => {
    const headers = {
      authorization: `Bearer ${await token()}`,
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-06-18',
    };
    const call = (name: string, padding = '') => JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: { padding } } });
    ran.length = 0;
    const chunked = await send([call('secret').slice(0, 20), call('secret').slice(20)], { ...headers, 'content-type': 'application/json' });
    assert.equal(chunked.status, 200);
    assert.equal(JSON.parse(chunked.text).error.code, -32010);
    const padded = await send(call('secret', 'x'.repeat(70 * 1024)), { ...headers, 'content-type': 'application/json' });
    assert.equal(JSON.parse(padded.text).error.code, -32010);
    const plain = await send(call('secret'), { ...headers, 'content-type': 'text/plain' });
    assert.equal(JSON.parse(plain.text).error.code, -32010);
    const stepUp = await send(call('write'), { ...headers, 'content-type': 'application/json' });
    assert.equal(stepUp.status, 403);
    assert.deepEqual(ran, [], 'the upstream ran none of them');
  });
});
