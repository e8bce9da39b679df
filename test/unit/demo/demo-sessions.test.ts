/**
 * The demo MCP server frees sessions nobody uses any more (src/demo/server.ts): a session idle for
 * longer than its limit is closed when the next one opens, and its id then gets 404, so a client that
 * left without a DELETE does not hold an McpServer and transport forever.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type DemoServer, startDemoServer } from '../../../src/demo/server.ts';
import { TestClock } from '../../support/clock.ts';

const HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

async function openSession(url: string): Promise<string> {
  const response = await fetch(url, {
    method: 'POST',
    headers: HEADERS,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'demo-sessions', version: '1' } },
    }),
  });
  await response.text();
  const id = response.headers.get('mcp-session-id');
  assert.ok(id, `initialize answered ${response.status} without a session`);
  return id;
}

async function ping(url: string, session: string): Promise<number> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { ...HEADERS, 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
  });
  await response.text();
  return response.status;
}

describe('demo server sessions', () => {
  const clock = new TestClock();
  let demo: DemoServer;
  before(async () => {
    demo = await startDemoServer({ clock, sessionIdleMs: 60_000 });
  });
  after(() => demo.close());

  it('closes a session idle past the limit, and keeps one in use', async () => {
    const idle = await openSession(demo.url);
    const busy = await openSession(demo.url);
    clock.advance(40_000);
    assert.equal(await ping(demo.url, busy), 200);
    clock.advance(30_000);
    await openSession(demo.url); // the sweep runs as a session opens
    assert.equal(await ping(demo.url, idle), 404, 'the idle session was closed');
    assert.equal(await ping(demo.url, busy), 200, 'the session in use was kept');
  });
});
