/**
 * Rate limits on MCP calls and the audit stream, end to end (docs/rate-limits.md, docs/audit.md): two
 * gateway replicas share one SQLite file, the official SDK client calls through both, a per-user
 * limit on one tool is hit across them (429, Retry-After, JSON-RPC error) and recovers when the
 * window ends (the clock is moved by Retry-After, never waited for). The audit stream is read back
 * and its lines checked field by field: an allowed tools/call, a refused one, 401s, a forged consent
 * post, and tool arguments absent by default and present but redacted where the operator turned
 * them on.
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { type RunningGateway, startGateway } from '../../src/app.ts';
import { configSchema } from '../../src/config/schema.ts';
import { JsonRpcCode } from '../../src/core/jsonrpc.ts';
import { Browser } from '../support/browser.ts';
import { TestClock } from '../support/clock.ts';
import { event, type LogLine, LogWatch } from '../support/log-watch.ts';
import { TestOAuthClientProvider } from '../support/mcp-client.ts';
import { freePort } from '../support/ports.ts';
import { pkceAuthorizeUrl, registerPublicClient } from './oauth.ts';
import { loggedInClient, type Stack, startStack } from './stack.ts';

/** `echo` may be called 3 times a minute per user; everything else 1000 times a day per user. */
const ECHO_PER_MINUTE = 3;

/** The seconds left in the clock's current minute, as the gateway computes Retry-After. */
function secondsLeftInMinute(now: number): number {
  return Math.max(1, Math.ceil(((Math.floor(now / 60_000) + 1) * 60_000 - now) / 1000));
}

/** The SDK's error for a refused POST: the HTTP status as `code`, the JSON-RPC error body in the message. */
function rateLimited(error: unknown): boolean {
  return (error as { code?: unknown }).code === 429 && /"code":-32029/.test((error as Error).message);
}

function echo(client: Client, text: string, extra: Record<string, unknown> = {}) {
  return client.callTool({ name: 'echo', arguments: { text, ...extra } });
}

describe('rate limits across replicas, and the audit stream', () => {
  let stack: Stack;
  let replica: RunningGateway;
  let replicaUrl: string;
  const clock = new TestClock();
  const audit = LogWatch.audit();

  before(async () => {
    stack = await startStack({
      clock,
      audit: audit.audit,
      // The operational logger copies audit events to the audit stream, as the default one does.
      logger: new LogWatch('silent', audit.audit).logger,
      extraServers: [
        {
          name: 'secrets',
          path: '/secrets',
          upstream: { url: 'demo' },
          scopes: ['mcp:tools'],
          audit: { includeArguments: true, redactKeys: ['apiKey'] },
        },
      ],
      configure: (config) => {
        const tools = config.servers?.[0];
        assert.ok(tools);
        tools.rateLimits = [
          { per: 'user+tool', tools: ['echo'], limit: ECHO_PER_MINUTE, windowSeconds: 60 },
          { per: 'user', limit: 1000, windowSeconds: 86_400 },
        ];
      },
    });
    // A second replica on the same store (the SQLite file) and clock, as behind a load balancer.
    const port = await freePort();
    replica = await startGateway(configSchema.parse({ ...stack.config, listen: { host: '127.0.0.1', port } }), {
      logger: new LogWatch('silent', audit.audit).logger,
      audit: audit.audit,
      announce: () => {},
      clock,
    });
    replicaUrl = `http://127.0.0.1:${port}`;
  });
  after(async () => {
    await replica?.close();
    await stack?.close();
  });

  /** An SDK client on the replica, with the tokens `provider` already holds (no second login). */
  async function clientOnReplica(provider: TestOAuthClientProvider): Promise<Client> {
    const client = new Client({ name: 'replica-client', version: '0.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${replicaUrl}/mcp`), { authProvider: provider, fetch: stack.fetch }));
    return client;
  }

  /** The audit line of the next MCP call matching `fields`. */
  function callLine(fields: LogLine): Promise<LogLine> {
    return audit.first((line) => line.event === 'mcp.call' && Object.entries(fields).every(([key, value]) => line[key] === value), JSON.stringify(fields));
  }

  test('a per-user tool limit is hit across two replicas (429, Retry-After, JSON-RPC error) and recovers when its window ends', async () => {
    const provider = new TestOAuthClientProvider({ mode: 'dcr', clientName: 'rate-limited SDK client' });
    const here = await loggedInClient(stack, provider);
    const there = await clientOnReplica(provider);
    try {
      // Keep the whole test inside one minute of the gateway's clock.
      if (secondsLeftInMinute(clock.now()) < 5) clock.advance(secondsLeftInMinute(clock.now()) * 1000);
      await echo(here, 'one');
      await echo(there, 'two');
      await echo(here, 'three');
      await assert.rejects(echo(there, 'four'), rateLimited, 'the fourth echo in the minute, at the other replica');
      await assert.rejects(echo(here, 'five'), rateLimited, 'and at this one');
      assert.ok((await there.listTools()).tools.length > 0, 'other calls are not limited by the echo rule');

      // What a client sees: 429, Retry-After, and a JSON-RPC error answering its request id.
      const token = provider.tokens()?.access_token;
      assert.ok(token);
      const expectedRetry = secondsLeftInMinute(clock.now());
      const raw = await fetch(`${replicaUrl}/mcp`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 'over-1', method: 'tools/call', params: { name: 'echo', arguments: { text: 'x' } } }),
      });
      assert.equal(raw.status, 429);
      assert.equal(raw.headers.get('retry-after'), String(expectedRetry));
      assert.equal(raw.headers.get('content-type'), 'application/json');
      const body = (await raw.json()) as { jsonrpc: string; id: unknown; error: { code: number; message: string } };
      assert.equal(body.jsonrpc, '2.0');
      assert.equal(body.id, 'over-1');
      assert.equal(body.error.code, JsonRpcCode.RATE_LIMITED);
      assert.equal(body.error.code, -32029);
      assert.match(body.error.message, /Rate limit exceeded .*retry after \d+ s/);

      clock.advance(expectedRetry * 1000);
      assert.deepEqual((await echo(there, 'again')).content, [{ type: 'text', text: 'again' }], 'recovered at the replica');
      await echo(here, 'and here');
    } finally {
      await here.close();
      await there.close();
    }
  });

  test('audit lines of MCP calls, field by field: allowed, rate-limited, no token, bad token', async () => {
    const provider = new TestOAuthClientProvider({ mode: 'dcr', clientName: 'audited SDK client' });
    const client = await loggedInClient(stack, provider);
    const clientId = String(provider.clientInformation()?.client_id);
    try {
      // Alice's echo budget was spent by the previous test in this minute: start a new one.
      clock.advance(secondsLeftInMinute(clock.now()) * 1000);
      await echo(client, 'audited', { apiKey: 'sk-never-logged' });
      const allowed = await callLine({ client: clientId, tool: 'echo', decision: 'allowed' });
      assert.equal(allowed.stream, 'audit');
      assert.equal(allowed.server, 'tools');
      assert.equal(allowed.user, 'corp:alice');
      assert.equal(allowed.httpMethod, 'POST');
      assert.equal(allowed.rpcMethod, 'tools/call');
      assert.equal(typeof allowed.rpcId, 'number');
      assert.equal(allowed.status, 200);
      assert.equal(allowed.upstreamStatus, 200);
      assert.equal(allowed.completed, true);
      assert.equal(allowed.reason, undefined);
      assert.ok(typeof allowed.latencyMs === 'number' && allowed.latencyMs >= 0);
      assert.ok(typeof allowed.bytesIn === 'number' && allowed.bytesIn > 50, 'the request body length');
      assert.ok(typeof allowed.bytesOut === 'number' && allowed.bytesOut > 50, 'the response bytes');
      assert.equal(allowed.arguments, undefined, 'arguments are not audited by default');
      assert.ok(!JSON.stringify(audit.lines).includes('sk-never-logged'), 'nothing of the arguments anywhere');

      for (let i = 1; i < ECHO_PER_MINUTE; i++) await echo(client, `fill ${i}`);
      await assert.rejects(echo(client, 'over'), rateLimited);
      const limited = await callLine({ client: clientId, tool: 'echo', decision: 'denied' });
      assert.equal(limited.reason, 'rate_limited');
      assert.equal(limited.limit, '3 per 60 s per user+tool echo');
      assert.equal(limited.user, 'corp:alice');
      assert.equal(limited.status, 429);
      assert.equal(limited.upstreamStatus, undefined, 'no upstream saw it');
      assert.equal(limited.rpcMethod, 'tools/call');

      const missingLine = audit.next(event('mcp.call', { reason: 'missing_token' }), 'missing_token');
      const anonymous = await fetch(stack.mcpUrl(), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      assert.equal(anonymous.status, 401);
      const missing = await missingLine;
      assert.equal(missing.decision, 'denied');
      assert.equal(missing.status, 401);
      assert.equal(missing.server, 'tools');
      assert.equal(missing.user, undefined);

      const invalidLine = audit.next(event('mcp.call', { reason: 'invalid_token' }), 'invalid_token');
      const forged = await fetch(`${replicaUrl}/mcp`, {
        method: 'POST',
        headers: { authorization: 'Bearer not-a-token', 'content-type': 'application/json' },
        body: '{}',
      });
      assert.equal(forged.status, 401);
      const invalid = await invalidLine;
      assert.equal(invalid.decision, 'denied');
      assert.equal(invalid.status, 401);
      assert.ok(!JSON.stringify(invalid).includes('not-a-token'), 'the token is never audited');
    } finally {
      await client.close();
    }
  });

  test('arguments are audited, with the configured keys redacted, only for a server whose operator turned that on', async () => {
    const provider = new TestOAuthClientProvider({ mode: 'dcr', clientName: 'arguments SDK client' });
    const client = await loggedInClient(stack, provider, { mcpPath: '/secrets' });
    try {
      await echo(client, 'visible', { apiKey: 'sk-secret-value', password: 'hunter2' });
      const line = await callLine({ server: 'secrets', tool: 'echo', decision: 'allowed' });
      assert.deepEqual(line.arguments, { text: 'visible', apiKey: '[redacted]', password: '[redacted]' });
      assert.ok(!JSON.stringify(audit.lines).includes('sk-secret-value'));
      assert.ok(!JSON.stringify(audit.lines).includes('hunter2'));
    } finally {
      await client.close();
    }
  });

  test('security events of sign-in reach the audit stream; a forged consent post is audited', async () => {
    assert.ok(audit.some(event('consent.approved')), 'consent.approved copied from the operational logger');
    assert.ok(audit.some(event('token.issued')) || audit.some(event('login.succeeded')), 'sign-in events copied');
    assert.ok(
      audit.lines.every((line) => line.stream === 'audit'),
      'every line on the audit stream is marked as such',
    );

    const client = await registerPublicClient(stack);
    const browser = new Browser({ ca: stack.ca.caPem });
    const consent = await browser.goto(pkceAuthorizeUrl(stack, client, { state: 'forged-state', scope: 'mcp:tools', resource: stack.mcpUrl() }).url);
    assert.match(consent.url.pathname, /^\/interaction\//);
    const refused = await browser.submitForm(consent, { button: 'approve', fields: { csrf: 'A'.repeat(43) } });
    assert.equal(refused.status, 403);
    const line = await audit.first(event('consent.forged'), 'consent.forged');
    assert.equal(line.reason, 'csrf_invalid');
    assert.equal(line.clientId, client.client_id);
    assert.equal(line.step, 'consent');
    assert.equal(line.level, 40);
    assert.equal(typeof line.uid, 'string');
    assert.ok(!JSON.stringify(line).includes('A'.repeat(43)), 'the posted token is not audited');
  });
});
