/**
 * The proxy's byte-level JSON-RPC check (src/core/jsonrpc-scan.ts) hands on messages whose `params`
 * is read lazily from the bytes. The consumers that read a request's contents must see it exactly as
 * the full parse would: the audit line's `arguments` (`audit.includeArguments`, with `redactKeys`)
 * and the `toolAccess` screen. Real SDK upstream (stateless, JSON answers), real resource server.
 */
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK } from 'jose';
import { z } from 'zod';
import { configSchema, type ServerConfig } from '../../../src/config/schema.ts';
import { scanJsonRpcBody } from '../../../src/core/jsonrpc-scan.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { createResourceServer, type ResourceServer } from '../../../src/resource-server/index.ts';
import type { UserRecord } from '../../../src/storage/records.ts';
import { signAccessToken } from '../../support/access-tokens.ts';
import { type LogLine, LogWatch } from '../../support/log-watch.ts';
import { answerStatelessly } from '../../support/stateless-mcp.ts';

const ALICE: UserRecord = { id: 'local:alice', provider: 'local', subject: 'alice', groups: [], createdAt: 0, lastLoginAt: 0 };

let upstream: Server;
let gatewayHttp: Server;
let gateway: ResourceServer;
let issuer: string;
let privateKey: CryptoKey;
let publicJwk: JWK;
const audit = LogWatch.audit();
/** Tool calls the upstream ran, with the arguments it received. */
const ran: Array<{ tool: string; args: unknown }> = [];

function token(path: string): Promise<string> {
  return signAccessToken(privateKey, { issuer, audience: `${issuer}${path}`, subject: ALICE.id, clientId: 'c1', scope: 'mcp', kid: 'k' });
}

async function post(path: string, body: string): Promise<{ status: number; text: string }> {
  const headers = {
    authorization: `Bearer ${await token(path)}`,
    accept: 'application/json, text/event-stream',
    'content-type': 'application/json',
    'mcp-protocol-version': '2025-06-18',
  };
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${issuer}${path}`, { method: 'POST', headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A `tools/call` body the byte-level check accepts (asserted, so the test cannot pass on the full parse). */
function scannedCall(id: number, tool: string, args: Record<string, unknown>): string {
  const body = JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: tool, arguments: args } });
  assert.ok(scanJsonRpcBody(Buffer.from(body)) !== undefined, 'the body takes the byte-level path');
  return body;
}

function callLine(server: string, rpcId: number): Promise<LogLine> {
  return audit.first((line) => line.event === 'mcp.call' && line.server === server && line.rpcId === rpcId, `${server} call ${rpcId}`);
}

before(async () => {
  const pair = await generateKeyPair('ES256');
  privateKey = pair.privateKey;
  publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'k', alg: 'ES256', use: 'sig' };
  upstream = createServer((req, res) => {
    const server = new McpServer({ name: 'scan-lab', version: '1.0.0' });
    for (const name of ['echo', 'secret']) {
      server.registerTool(name, { description: name, inputSchema: { text: z.string(), apiKey: z.string().optional() } }, async (args) => {
        ran.push({ tool: name, args });
        return { content: [{ type: 'text', text: args.text }] };
      });
    }
    answerStatelessly(server, req, res, { enableJsonResponse: true });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  gatewayHttp = createServer();
  await new Promise<void>((resolve) => gatewayHttp.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(gatewayHttp.address() as AddressInfo).port}`;
  const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp`;
  const auditArgs = { includeArguments: true, redactKeys: ['apiKey'] };
  const servers: ServerConfig[] = configSchema.parse({
    servers: [
      { name: 'open', path: '/open', upstream: { url: upstreamUrl }, scopes: ['mcp'], audit: auditArgs },
      {
        name: 'guarded',
        path: '/guarded',
        upstream: { url: upstreamUrl },
        scopes: ['mcp'],
        audit: auditArgs,
        toolAccess: { rules: [{ tools: ['echo'] }] },
      },
    ],
  }).servers as ServerConfig[];
  gateway = createResourceServer({
    issuer,
    servers,
    publicKeys: () => [publicJwk],
    findUser: async () => ALICE,
    logger: createLogger('silent'),
    audit: audit.audit,
  });
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

describe('scanned messages, read by the audit line and the toolAccess screen', () => {
  it('audit.includeArguments records the arguments of a call that took the byte-level path, redacted', async () => {
    ran.length = 0;
    const answer = await post('/open', scannedCall(11, 'echo', { text: 'hello', apiKey: 'sk-live-1' }));
    assert.equal(answer.status, 200);
    assert.equal(JSON.parse(answer.text).result.content[0].text, 'hello');
    const line = await callLine('open', 11);
    assert.equal(line.tool, 'echo');
    assert.equal(line.rpcMethod, 'tools/call');
    assert.deepEqual(line.arguments, { text: 'hello', apiKey: '[redacted]' });
    assert.deepEqual(ran, [{ tool: 'echo', args: { text: 'hello', apiKey: 'sk-live-1' } }], 'the upstream got the body unchanged');
  });

  it('the toolAccess screen judges scanned messages by their params: the allowed tool runs, the other is refused', async () => {
    ran.length = 0;
    const allowed = await post('/guarded', scannedCall(21, 'echo', { text: 'fine' }));
    assert.equal(allowed.status, 200);
    assert.equal(JSON.parse(allowed.text).result.content[0].text, 'fine');
    const refused = await post('/guarded', scannedCall(22, 'secret', { text: 'no' }));
    assert.equal(refused.status, 200);
    assert.equal(JSON.parse(refused.text).error.code, -32010);
    assert.deepEqual(
      ran.map((call) => call.tool),
      ['echo'],
      'the upstream never ran the refused tool',
    );
    const allowedLine = await callLine('guarded', 21);
    assert.deepEqual(allowedLine.arguments, { text: 'fine' });
    const refusedLine = await callLine('guarded', 22);
    assert.equal(refusedLine.decision, 'denied');
    assert.equal(refusedLine.reason, 'tool_access');
    assert.equal(refusedLine.tool, 'secret');
    assert.deepEqual(refusedLine.arguments, { text: 'no' });
  });
});
