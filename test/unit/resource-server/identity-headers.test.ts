/**
 * What crosses the proxy, seen by a raw upstream that records every request: the MCP transport
 * headers and methods pass both ways; the client's token, cookies and forged identity never do.
 */

import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { configSchema } from '../../../src/config/schema.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { createResourceServer, type ResourceServer } from '../../../src/resource-server/index.ts';

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

describe('headers and methods through the proxy', () => {
  const seen: Seen[] = [];
  let upstream: Server;
  let front: Server;
  let gateway: ResourceServer;
  let issuer: string;
  let token: string;

  before(async () => {
    upstream = createServer((req, res) => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers });
      req.resume();
      req.on('end', () => {
        res.writeHead(req.method === 'DELETE' ? 204 : 200, {
          'content-type': 'application/json',
          'mcp-session-id': 'session-from-upstream',
          'set-cookie': 'planted=1',
        });
        res.end(req.method === 'DELETE' ? undefined : '{"jsonrpc":"2.0","id":1,"result":{}}');
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp`;

    front = createServer((req, res) => {
      if (!gateway.handle(req, res)) {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    issuer = `http://localhost:${(front.address() as AddressInfo).port}`;

    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
    const config = configSchema.parse({
      publicUrl: issuer,
      servers: [{ name: 'raw', path: '/mcp', upstream: { url: upstreamUrl }, identityHeaders: { email: 'x-user-email', subject: 'x-user-id' } }],
    });
    gateway = createResourceServer({
      issuer,
      servers: config.servers!,
      publicKeys: () => [publicJwk],
      findUser: async (sub) => ({ id: sub, provider: 'corp', subject: 'alice', email: 'alice@example.com', groups: [], createdAt: 0, lastLoginAt: 0 }),
      logger: createLogger('silent'),
    });
    token = await new SignJWT({ client_id: 'c1', scope: '' })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'k1' })
      .setIssuer(issuer)
      .setAudience(`${issuer}/mcp`)
      .setSubject('corp:alice')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);
  });
  after(async () => {
    await gateway?.close();
    await new Promise<void>((resolve) => front?.close(() => resolve()));
    await new Promise<void>((resolve) => upstream?.close(() => resolve()));
  });

  it('passes the MCP transport headers up and the session id back; strips token, cookies and forged identity', async () => {
    const response = await fetch(`${issuer}/mcp?x=1`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        cookie: '__Host-mcp-gateway-consent=secret',
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-session-id': 'session-from-client',
        'mcp-protocol-version': '2026-07-28',
        'last-event-id': 'event-41',
        'mcp-method': 'tools/call',
        'mcp-name': 'echo',
        'x-user-email': 'forged@evil.example',
      },
      body: '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}',
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('mcp-session-id'), 'session-from-upstream');
    assert.equal(response.headers.get('set-cookie'), null, 'an upstream cannot plant cookies on the gateway origin');
    const request = seen.at(-1)!;
    assert.equal(request.method, 'POST');
    assert.equal(request.url, '/mcp?x=1');
    assert.equal(request.headers['mcp-session-id'], 'session-from-client');
    assert.equal(request.headers['mcp-protocol-version'], '2026-07-28');
    assert.equal(request.headers['last-event-id'], 'event-41');
    assert.equal(request.headers['mcp-method'], 'tools/call');
    assert.equal(request.headers['mcp-name'], 'echo');
    assert.equal(request.headers.authorization, undefined, 'no token passthrough');
    assert.equal(request.headers.cookie, undefined);
    assert.equal(request.headers['x-user-email'], 'alice@example.com', 'identity comes from the gateway, not the client');
    assert.equal(request.headers['x-user-id'], 'corp:alice');
  });

  it('passes DELETE (session end) through', async () => {
    const response = await fetch(`${issuer}/mcp`, { method: 'DELETE', headers: { authorization: `Bearer ${token}`, 'mcp-session-id': 'session-from-client' } });
    assert.equal(response.status, 204);
    assert.equal(seen.at(-1)!.method, 'DELETE');
    assert.equal(seen.at(-1)!.headers['mcp-session-id'], 'session-from-client');
  });
});
