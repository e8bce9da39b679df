/**
 * The stdio bridge on its own: real child processes (test/support/stdio-test-server.ts and
 * @modelcontextprotocol/server-everything), the official SDK client over Streamable HTTP and over the
 * older HTTP+SSE transport, talking straight to the bridge with the headers the gateway would add.
 *
 * Time is a TestClock: idleness is reached by moving it and sweeping, never by sleeping. What the
 * processes do on their own schedule (a stderr line, a stream opening, an answer arriving late) is
 * awaited as the log line or notification that reports it.
 */

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { type TestContext, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { ClientCapabilities } from '@modelcontextprotocol/sdk/types.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  McpError,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { type GatewayConfigInput, serverSchema } from '../../../src/config/schema.ts';
import { ErrorCode, hasErrorCode } from '../../../src/core/errors.ts';
import { JsonRpcCode, type JsonRpcFailure } from '../../../src/core/jsonrpc.ts';
import type { IdpTokenSource } from '../../../src/idp/idp-tokens.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { type StdioServer, startStdioServer } from '../../../src/stdio/index.ts';
import { TestClock } from '../../support/clock.ts';
import { event, type LogLine, LogWatch } from '../../support/log-watch.ts';
import { processAlive } from '../../support/processes.ts';
import { STDIO_TEST_SERVER } from '../../support/stdio-test-server.ts';

type StdioInput = Extract<NonNullable<GatewayConfigInput['servers']>[number]['upstream'], { stdio: unknown }>['stdio'];

const EVERYTHING = new URL('../../../node_modules/@modelcontextprotocol/server-everything/dist/index.js', import.meta.url).pathname;

/** The bridge never asks for an IdP token unless `idpToken.env` is configured; these tests do not configure it. */
const noIdpTokens: IdpTokenSource = {
  accessTokenFor: () => Promise.reject(new Error('no IdP token source in this test')),
};

interface Started {
  stdio: StdioServer;
  logs: LogLine[];
  watch: LogWatch;
  /** The bridge's clock: it stands still unless the test moves it. */
  clock: TestClock;
}

async function start(t: TestContext, stdio: Partial<StdioInput> = {}, server: { maxRequestBytes?: number } = {}): Promise<Started> {
  const watch = new LogWatch('debug');
  const clock = new TestClock();
  const config = serverSchema.parse({
    name: 'tester',
    path: '/tester',
    upstream: { stdio: { command: process.execPath, args: [STDIO_TEST_SERVER], stopGracePeriod: 1, ...stdio } },
    ...server,
  });
  if (!('stdio' in config.upstream)) throw new Error('unreachable');
  const started = await startStdioServer(config, config.upstream.stdio, { logger: watch.logger, idpTokens: noIdpTokens, clock, listenOnLoopback: true });
  t.after(() => started.close());
  return { stdio: started, logs: watch.lines, watch, clock };
}

/** A promise and the function that settles it, for an event a callback reports. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((settle) => {
    resolve = settle;
  });
  return { promise, resolve };
}

/** The test server's stderr line for a `slow` call it saw cancelled. */
const slowCallCancelled = (line: LogLine): boolean => line.stream === 'stderr' && line.msg === 'stdio-test-server slow call cancelled';

async function connect(
  t: TestContext,
  stdio: StdioServer,
  userId: string,
  options: { sse?: boolean; capabilities?: ClientCapabilities } = {},
): Promise<Client> {
  const headers = stdio.headersFor(userId);
  const transport = options.sse
    ? new SSEClientTransport(new URL(`${stdio.url}/sse`), { requestInit: { headers } })
    : new StreamableHTTPClientTransport(new URL(stdio.url), { requestInit: { headers } });
  const client = new Client({ name: 'bridge-test', version: '1.0.0' }, { capabilities: options.capabilities ?? {} });
  await client.connect(transport);
  t.after(() => client.close().catch(() => undefined));
  return client;
}

/** Opens an HTTP+SSE (2024-11-05) stream for `userId` and reads the relative POST endpoint it announces. */
async function openLegacyStream(stdio: StdioServer, userId: string): Promise<{ controller: AbortController; endpoint: string }> {
  const controller = new AbortController();
  const stream = await fetch(`${stdio.url}/sse`, { headers: { ...stdio.headersFor(userId), accept: 'text/event-stream' }, signal: controller.signal });
  const first = new TextDecoder().decode((await stream.body!.getReader().read()).value);
  const endpoint = /data: (messages\?sessionId=[0-9a-f-]+)/.exec(first)?.[1];
  assert.ok(endpoint, `relative endpoint event: ${first}`);
  return { controller, endpoint };
}

/** The JSON-RPC error code of an error response body. */
async function jsonRpcErrorCode(response: Response): Promise<number> {
  return ((await response.json()) as { error: { code: number } }).error.code;
}

/**
 * Opens a Streamable HTTP session by hand (no SDK client), for tests of the wire rules: the base
 * headers of `userId`, the `initialize` answer, and the headers of later requests in the session.
 */
async function openRawSession(stdio: StdioServer, userId: string, protocolVersion = '2025-06-18') {
  const base = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...stdio.headersFor(userId) };
  const init = await fetch(stdio.url, {
    method: 'POST',
    headers: base,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion, capabilities: {}, clientInfo: { name: 'x', version: '1' } },
    }),
  });
  await init.text();
  const session = { ...base, 'mcp-session-id': init.headers.get('mcp-session-id')!, 'mcp-protocol-version': protocolVersion };
  return { base, init, session };
}

async function callText(client: Client, name: string, args: Record<string, unknown> = {}): Promise<string> {
  const result = await client.callTool({ name, arguments: args });
  const content = result.content as Array<{ type: string; text?: string }>;
  return content[0]?.text ?? '';
}

test('shared mode: every user reaches one process; tools, large messages both ways, stderr in the logs', async (t) => {
  const { stdio, logs } = await start(t);
  const alice = await connect(t, stdio, 'corp:alice');
  const bob = await connect(t, stdio, 'corp:bob');
  const tools = await alice.listTools();
  assert.ok(tools.tools.some((tool) => tool.name === 'echo'));
  assert.equal(await callText(alice, 'echo', { text: 'hello' }), 'hello');
  const pidA = await callText(alice, 'pid');
  assert.equal(await callText(bob, 'pid'), pidA);
  assert.equal(alice.getServerVersion()?.name, 'stdio-test-server');

  // Larger than a pipe buffer (64 KiB) and than 1 MiB, in both directions.
  const big = await callText(bob, 'big', { bytes: 3 * 1024 * 1024 });
  assert.equal(big.length, 3 * 1024 * 1024);
  const long = 'y'.repeat(1_500_000);
  assert.equal(await callText(alice, 'echo', { text: long }), long);

  const started = logs.find((line) => typeof line.msg === 'string' && line.msg.startsWith('stdio-test-server started'));
  assert.ok(started, "the child's stderr line is logged");
  assert.equal(started.server, 'tester');
  assert.equal(started.stream, 'stderr');
});

test("per-user mode: each user gets an own process; one user's sessions share it", async (t) => {
  const { stdio } = await start(t, { mode: 'per-user' });
  const alice1 = await connect(t, stdio, 'corp:alice');
  const alice2 = await connect(t, stdio, 'corp:alice', { sse: true });
  const bob = await connect(t, stdio, 'corp:bob');
  const pidA1 = await callText(alice1, 'pid');
  const pidA2 = await callText(alice2, 'pid');
  const pidB = await callText(bob, 'pid');
  assert.equal(pidA1, pidA2);
  assert.notEqual(pidA1, pidB);
  assert.deepEqual(new Set(stdio.supervisor.pids().values()), new Set([Number(pidA1), Number(pidB)]));
});

test('only the gateway may call the bridge, and a session stays with its user', async (t) => {
  const { stdio } = await start(t, { mode: 'per-user' });
  const init = JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
  });
  const base = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  const noSecret = await fetch(stdio.url, { method: 'POST', headers: { ...base, 'x-mcp-gateway-user': 'corp%3Aalice' }, body: init });
  assert.equal(noSecret.status, 403);
  const wrongSecret = await fetch(stdio.url, {
    method: 'POST',
    headers: { ...base, ...stdio.headersFor('corp:alice'), 'x-mcp-gateway-bridge-secret': 'guess' },
    body: init,
  });
  assert.equal(wrongSecret.status, 403);
  const noUser = await fetch(stdio.url, {
    method: 'POST',
    headers: { ...base, 'x-mcp-gateway-bridge-secret': stdio.headersFor('x')['x-mcp-gateway-bridge-secret']! },
    body: init,
  });
  assert.equal(noUser.status, 400);

  const ok = await fetch(stdio.url, { method: 'POST', headers: { ...base, ...stdio.headersFor('corp:alice') }, body: init });
  assert.equal(ok.status, 200);
  const sessionId = ok.headers.get('mcp-session-id');
  assert.ok(sessionId);
  const text = await ok.text();
  assert.match(text, /"protocolVersion":"2025-06-18"/);
  // Bob presenting Alice's session id gets the same answer as for an unknown session.
  const list = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' });
  const stolen = await fetch(stdio.url, {
    method: 'POST',
    headers: { ...base, ...stdio.headersFor('corp:bob'), 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18' },
    body: list,
  });
  assert.equal(stolen.status, 404);
  assert.equal(await jsonRpcErrorCode(stolen), JsonRpcCode.SESSION_NOT_FOUND);
  const own = await fetch(stdio.url, {
    method: 'POST',
    headers: { ...base, ...stdio.headersFor('corp:alice'), 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18' },
    body: list,
  });
  assert.equal(own.status, 200);
  assert.match(await own.text(), /"name":"echo"/);
});

test('protocol versions: each client gets the version it asked for, one initialize reaches the process', async (t) => {
  const { stdio, logs } = await start(t);
  const base = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...stdio.headersFor('corp:alice') };
  for (const version of ['2024-11-05', '2025-03-26', '2025-06-18', '2025-11-25']) {
    const response = await fetch(stdio.url, {
      method: 'POST',
      headers: base,
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: version, capabilities: {}, clientInfo: { name: 'x', version: '1' } },
      }),
    });
    assert.equal(response.status, 200);
    assert.match(await response.text(), new RegExp(`"protocolVersion":"${version}"`));
  }
  const unknown = await fetch(stdio.url, {
    method: 'POST',
    headers: base,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2099-01-01', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
    }),
  });
  assert.match(await unknown.text(), /"protocolVersion":"2025-11-25"/);
  assert.equal(logs.filter((line) => line.event === 'stdio.process_started').length, 1);
});

test('malformed client messages get JSON-RPC errors and a log line; the bridge keeps serving', async (t) => {
  const { stdio, logs } = await start(t);
  const client = await connect(t, stdio, 'corp:alice');
  const legacy = await connect(t, stdio, 'corp:alice', { sse: true });
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...stdio.headersFor('corp:alice') };
  const notJson = await fetch(stdio.url, { method: 'POST', headers, body: '{"jsonrpc":' });
  assert.equal(notJson.status, 400);
  assert.equal(await jsonRpcErrorCode(notJson), JsonRpcCode.PARSE_ERROR);
  const notRpc = await fetch(stdio.url, { method: 'POST', headers, body: '{"hello":"world"}' });
  assert.equal(notRpc.status, 400);
  assert.equal(await jsonRpcErrorCode(notRpc), JsonRpcCode.INVALID_REQUEST);
  // MCP: a request id is never null; the bridge answers exactly as the proxy does for HTTP upstreams.
  const nullId = await fetch(stdio.url, { method: 'POST', headers, body: '{"jsonrpc":"2.0","id":null,"method":"ping"}' });
  assert.equal(nullId.status, 400);
  assert.deepEqual((await nullId.json()) as { id: unknown; error: { code: number } }, {
    jsonrpc: '2.0',
    id: null,
    error: { code: JsonRpcCode.INVALID_REQUEST, message: 'Invalid Request: a request "id" must be a string or an integer, never null' },
  });

  // The older transport's POST endpoint: an unknown session id is refused, bad bodies get -32700/-32600.
  const bad = await fetch(`${stdio.url}/messages?sessionId=nope`, { method: 'POST', headers, body: '{}' });
  assert.equal(bad.status, 404);
  assert.equal(await jsonRpcErrorCode(bad), JsonRpcCode.SESSION_NOT_FOUND);
  const { controller, endpoint } = await openLegacyStream(stdio, 'corp:alice');
  const legacyNotJson = await fetch(`${stdio.url}/${endpoint}`, { method: 'POST', headers, body: 'nope' });
  assert.equal(await jsonRpcErrorCode(legacyNotJson), JsonRpcCode.PARSE_ERROR);
  const legacyNotRpc = await fetch(`${stdio.url}/${endpoint}`, { method: 'POST', headers, body: '[]' });
  assert.equal(await jsonRpcErrorCode(legacyNotRpc), JsonRpcCode.INVALID_REQUEST);
  const otherUser = await fetch(`${stdio.url}/${endpoint}`, {
    method: 'POST',
    headers: { ...headers, ...stdio.headersFor('corp:bob') },
    body: '{"jsonrpc":"2.0","method":"x"}',
  });
  assert.equal(otherUser.status, 404, 'a legacy session stays with its user');
  controller.abort();
  assert.ok(logs.some((line) => line.event === 'stdio.bad_request'));
  assert.equal(await callText(client, 'echo', { text: 'still here' }), 'still here');
  assert.equal(await callText(legacy, 'echo', { text: 'sse too' }), 'sse too');
});

test('sampling, elicitation and roots reach the client whose call is in flight, over both transports', async (t) => {
  const { stdio } = await start(t);
  const capabilities: ClientCapabilities = { sampling: {}, elicitation: {}, roots: { listChanged: true } };
  for (const sse of [false, true]) {
    const bystander = await connect(t, stdio, 'corp:bob', { sse, capabilities });
    let bystanderAsked = 0;
    bystander.setRequestHandler(CreateMessageRequestSchema, () => {
      bystanderAsked++;
      return { role: 'assistant', model: 'wrong', content: { type: 'text', text: 'wrong client' } };
    });
    const client = await connect(t, stdio, 'corp:alice', { sse, capabilities });
    client.setRequestHandler(CreateMessageRequestSchema, (request) => {
      const first = request.params.messages[0]?.content as { text?: string };
      return { role: 'assistant', model: 'test-model', content: { type: 'text', text: `reply to ${first.text}` } };
    });
    client.setRequestHandler(ElicitRequestSchema, () => ({ action: 'accept', content: { name: 'Alice' } }));
    client.setRequestHandler(ListRootsRequestSchema, () => ({ roots: [{ uri: 'file:///work/alice', name: 'work' }] }));
    assert.equal(await callText(client, 'sample', { prompt: 'hi' }), 'sampled: reply to hi');
    assert.equal(await callText(client, 'elicit'), 'elicited: accept Alice');
    assert.equal(await callText(client, 'roots'), 'file:///work/alice');
    assert.equal(bystanderAsked, 0);
  }
});

test('progress reaches the caller with its own token; cancellation reaches the process', async (t) => {
  const { stdio, watch } = await start(t);
  const alice = await connect(t, stdio, 'corp:alice');
  const bob = await connect(t, stdio, 'corp:bob');
  const progressA: number[] = [];
  const progressB: number[] = [];
  // Both clients use the same request ids and progress tokens; the bridge keeps them apart.
  const [a, b] = await Promise.all([
    alice.callTool({ name: 'slow', arguments: { steps: 3, delayMs: 20 } }, undefined, { onprogress: (p) => progressA.push(p.progress) }),
    bob.callTool({ name: 'slow', arguments: { steps: 5, delayMs: 10 } }, undefined, { onprogress: (p) => progressB.push(p.progress) }),
  ]);
  // The SDK client handles notifications a microtask late and drops the progress handler on the
  // response, so the last progress may be lost when it arrives in the same read as the response.
  assert.deepEqual(progressA, [1, 2, 3].slice(0, progressA.length));
  assert.deepEqual(progressB, [1, 2, 3, 4, 5].slice(0, progressB.length));
  assert.ok(progressA.length >= 2 && progressB.length >= 4, `progress ${progressA.join(',')} / ${progressB.join(',')}`);
  assert.match(JSON.stringify(a), /done 3/);
  assert.match(JSON.stringify(b), /done 5/);

  const controller = new AbortController();
  const cancelled = watch.next(slowCallCancelled, 'the process to see the cancellation');
  const call = alice.callTool({ name: 'slow', arguments: { steps: 50, delayMs: 100 } }, undefined, {
    signal: controller.signal,
    onprogress: (p) => {
      if (p.progress === 2) controller.abort('enough');
    },
  });
  await assert.rejects(call);
  // The process says so on stderr when its call stops; its count then has the cancellation.
  await cancelled;
  assert.equal(await callText(bob, 'stats'), JSON.stringify({ cancelled: 1 }));
});

test('a crash fails the calls in flight with a JSON-RPC error, and the process restarts with backoff', async (t) => {
  // The backoff before the restart is a real timer (a process cannot start in the past): kept short,
  // and the restart is awaited through the calls that queue behind it.
  const { stdio, logs } = await start(t, { restartBackoff: { initialMs: 20, maxMs: 1000 } });
  const client = await connect(t, stdio, 'corp:alice');
  const legacy = await connect(t, stdio, 'corp:bob', { sse: true });
  const before = Number(await callText(client, 'pid'));
  // The first progress shows the other session's call is in flight at the process.
  const running = deferred();
  const slow = legacy.callTool({ name: 'slow', arguments: { steps: 100, delayMs: 10 } }, undefined, { onprogress: () => running.resolve() }).then(
    () => undefined,
    (error: unknown) => error,
  );
  await running.promise;
  const crash = client.callTool({ name: 'crash' });
  await assert.rejects(crash, (error: unknown) => error instanceof McpError && error.code === JsonRpcCode.SERVER_UNAVAILABLE);
  const slowError = await slow;
  assert.ok(slowError instanceof McpError && slowError.code === JsonRpcCode.SERVER_UNAVAILABLE, "the other session's call in flight fails too");
  assert.ok(logs.some((line) => line.event === 'stdio.process_crashed' && line.code === 3));
  // Same sessions, new process.
  const after = Number(await callText(client, 'pid'));
  assert.notEqual(after, before);
  assert.equal(Number(await callText(legacy, 'pid')), after);
  assert.equal(processAlive(before), false);
});

test('per-user: an idle process is stopped and the session carries on with a new one', async (t) => {
  const { stdio, logs, clock } = await start(t, { mode: 'per-user', idleTimeout: 1 });
  const client = await connect(t, stdio, 'corp:alice');
  const first = Number(await callText(client, 'pid'));
  // Not idle yet: a sweep just short of the timeout keeps the process.
  clock.advance(999);
  await stdio.sweepIdle();
  assert.ok(processAlive(first), 'still running before the idle timeout');
  clock.advance(1);
  await stdio.sweepIdle();
  assert.ok(!processAlive(first), 'the idle process was stopped');
  assert.ok(logs.some((line) => line.event === 'stdio.process_idle_stopped'));
  assert.equal(stdio.supervisor.pids().size, 0);
  const second = Number(await callText(client, 'pid'));
  assert.notEqual(second, first);
});

test('a Streamable HTTP session abandoned without DELETE is forgotten once idle for sessionIdleTimeout by the clock', async (t) => {
  const { stdio, logs, clock } = await start(t, { sessionIdleTimeout: 60 });
  const { session } = await openRawSession(stdio, 'corp:alice');
  clock.advance(60_000);
  await stdio.sweepIdle();
  assert.equal(stdio.sessionCount(), 1, 'kept up to the timeout');
  clock.advance(1);
  await stdio.sweepIdle();
  assert.equal(stdio.sessionCount(), 0, 'forgotten past it');
  assert.ok(logs.some(event('stdio.session_expired', { userId: 'corp:alice' })));
  const gone = await fetch(stdio.url, { method: 'POST', headers: session, body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }) });
  assert.equal(gone.status, 404);
});

test('per-user: the process cap gives the next user a clear JSON-RPC error', async (t) => {
  const { stdio } = await start(t, { mode: 'per-user', maxProcesses: 1 });
  const alice = await connect(t, stdio, 'corp:alice');
  await callText(alice, 'pid');
  await assert.rejects(connect(t, stdio, 'corp:bob'), (error: unknown) => error instanceof McpError && error.code === JsonRpcCode.TOO_MANY_PROCESSES);
  assert.equal(stdio.supervisor.pids().size, 1);
});

test('shutdown stops the whole process group: no child or grandchild is left', async (t) => {
  // A shell wrapper that forks the server, like npx or uvx do: the server is a grandchild.
  const { stdio } = await start(t, {
    command: '/bin/sh',
    args: ['-c', `"${process.execPath}" "${STDIO_TEST_SERVER}"; echo wrapper-done >&2`],
    inheritEnv: ['PATH', 'HOME'],
  });
  const client = await connect(t, stdio, 'corp:alice');
  const serverPid = Number(await callText(client, 'pid'));
  const wrapperPid = [...stdio.supervisor.pids().values()][0]!;
  assert.notEqual(serverPid, wrapperPid, 'the server runs under the wrapper');
  assert.ok(processAlive(serverPid) && processAlive(wrapperPid));
  await client.close();
  await stdio.close();
  assert.equal(processAlive(serverPid), false, 'grandchild stopped');
  assert.equal(processAlive(wrapperPid), false, 'wrapper stopped');
});

test('@modelcontextprotocol/server-everything over the bridge, shared and per-user', async (t) => {
  if (!existsSync(EVERYTHING)) {
    t.skip('@modelcontextprotocol/server-everything is not installed');
    return;
  }
  for (const mode of ['shared', 'per-user'] as const) {
    const { stdio } = await start(t, { command: process.execPath, args: [EVERYTHING, 'stdio'], mode });
    const alice = await connect(t, stdio, 'corp:alice');
    const bob = await connect(t, stdio, 'corp:bob', { sse: true });
    const tools = await alice.listTools();
    assert.ok(
      tools.tools.some((tool) => tool.name === 'echo'),
      'server-everything lists echo',
    );
    const echoed = await alice.callTool({ name: 'echo', arguments: { message: 'everything' } });
    assert.match(JSON.stringify(echoed.content), /everything/);
    const sum = await bob.callTool({ name: 'get-sum', arguments: { a: 2, b: 3 } });
    assert.match(JSON.stringify(sum.content), /5/);
    assert.equal(stdio.supervisor.pids().size, mode === 'shared' ? 1 : 2);
    await stdio.close();
  }
});

test('a server that cannot start gives the client a JSON-RPC error and a log line; the bridge stays up', async (t) => {
  const { stdio, logs, clock } = await start(t, { command: '/nonexistent/mcp-server', args: [], restartBackoff: { initialMs: 100, maxMs: 200 } });
  const unavailable = (error: unknown): boolean => error instanceof McpError && error.code === JsonRpcCode.SERVER_UNAVAILABLE;
  await assert.rejects(connect(t, stdio, 'corp:alice'), unavailable);
  assert.ok(logs.some((line) => line.event === 'stdio.process_start_failed'));
  // Tried again on the next request (after the backoff, which the clock passes), with the same clear error.
  clock.advance(100);
  await assert.rejects(connect(t, stdio, 'corp:bob'), unavailable);
  assert.equal(logs.filter((line) => line.event === 'stdio.process_start_failed').length, 2);
});

test("notifications unrelated to a request reach every session's GET stream (and the older SSE stream)", async (t) => {
  const { stdio, watch } = await start(t);
  const received = { http: 0, sse: 0 };
  const heard = { http: deferred(), sse: deferred() };
  const http = await connect(t, stdio, 'corp:alice');
  const sse = await connect(t, stdio, 'corp:bob', { sse: true });
  http.setNotificationHandler(ToolListChangedNotificationSchema, () => {
    received.http++;
    heard.http.resolve();
  });
  sse.setNotificationHandler(ToolListChangedNotificationSchema, () => {
    received.sse++;
    heard.sse.resolve();
  });
  assert.equal(stdio.sessionCount(), 2);
  // The SDK client opens its GET stream right after initialize, on its own: wait until it is there.
  await watch.first(event('stdio.stream_opened', { userId: 'corp:alice' }), "the Streamable HTTP client's GET stream");
  assert.equal(await callText(sse, 'announce'), 'announced');
  await Promise.all([heard.http.promise, heard.sse.promise]);
  assert.deepEqual(received, { http: 1, sse: 1 }, 'each session heard tools/list_changed once');
});

test('Streamable HTTP rules: batches, DELETE, one GET stream, headers checked', async (t) => {
  const { stdio } = await start(t);
  const { base, init, session } = await openRawSession(stdio, 'corp:alice', '2025-03-26');
  assert.equal(init.status, 200);
  assert.equal(init.headers.get('content-type'), 'application/json');

  const accepted = await fetch(stdio.url, { method: 'POST', headers: session, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) });
  assert.equal(accepted.status, 202);
  // 2025-03-26 allows JSON-RPC batches: the answers come back together, matched by id.
  const batch = await fetch(stdio.url, {
    method: 'POST',
    headers: session,
    body: JSON.stringify([
      { jsonrpc: '2.0', id: 'a', method: 'tools/call', params: { name: 'echo', arguments: { text: 'one' } } },
      { jsonrpc: '2.0', id: 'b', method: 'ping' },
    ]),
  });
  const answers = (await batch.json()) as Array<{ id: string; result: unknown }>;
  assert.deepEqual(answers.map((answer) => answer.id).sort(), ['a', 'b']);
  assert.match(JSON.stringify(answers.find((answer) => answer.id === 'a')), /one/);

  const badVersion = await fetch(stdio.url, {
    method: 'POST',
    headers: { ...session, 'mcp-protocol-version': '1999-01-01' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'ping' }),
  });
  assert.equal(badVersion.status, 400);
  const badType = await fetch(stdio.url, { method: 'POST', headers: { ...session, 'content-type': 'text/plain' }, body: '{}' });
  assert.equal(badType.status, 415);
  const noSession = await fetch(stdio.url, { method: 'POST', headers: base, body: JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'ping' }) });
  assert.equal(noSession.status, 400);

  const controller = new AbortController();
  const stream = await fetch(stdio.url, { headers: { ...session, accept: 'text/event-stream' }, signal: controller.signal });
  assert.equal(stream.status, 200);
  assert.equal(stream.headers.get('content-type'), 'text/event-stream');
  const second = await fetch(stdio.url, { headers: { ...session, accept: 'text/event-stream' } });
  assert.equal(second.status, 409);
  const notSse = await fetch(stdio.url, { headers: { ...session, accept: 'application/json' } });
  assert.equal(notSse.status, 406);
  controller.abort();

  const deleted = await fetch(stdio.url, { method: 'DELETE', headers: session });
  assert.equal(deleted.status, 200);
  const gone = await fetch(stdio.url, { method: 'POST', headers: session, body: JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'ping' }) });
  assert.equal(gone.status, 404);
  assert.equal(stdio.sessionCount(), 0);
});

test('a client that vanishes mid-stream costs nothing but its own answer', async (t) => {
  const { stdio, logs, watch } = await start(t);
  const client = await connect(t, stdio, 'corp:alice');
  const { session } = await openRawSession(stdio, 'corp:bob');
  const controller = new AbortController();
  const slow = await fetch(stdio.url, {
    method: 'POST',
    headers: session,
    signal: controller.signal,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 2,
      method: 'tools/call',
      params: { name: 'slow', arguments: { steps: 5, delayMs: 100 }, _meta: { progressToken: 7 } },
    }),
  });
  // The first progress event turns the answer into an SSE stream; then the client is gone.
  assert.equal(slow.headers.get('content-type'), 'text/event-stream');
  const reader = slow.body!.getReader();
  await reader.read();
  controller.abort();
  // The call finishes on the server anyway; its answer finds the client gone and is dropped.
  await watch.first(event('stdio.answer_dropped', { userId: 'corp:bob' }), 'the late answer to be dropped');
  assert.equal(await callText(client, 'echo', { text: 'unaffected' }), 'unaffected');
  const again = await fetch(stdio.url, { method: 'POST', headers: session, body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'ping' }) });
  assert.deepEqual(await again.json(), { jsonrpc: '2.0', id: 3, result: {} });
  assert.ok(!logs.some((line) => line.level === 50), 'no error logged');
});

test("idpToken.env on a shared server is refused at start-up: one process cannot hold every user's token", async () => {
  const server = serverSchema.parse({
    name: 'shared-token',
    path: '/shared-token',
    upstream: { stdio: { command: process.execPath, args: [STDIO_TEST_SERVER] } },
    idpToken: { env: 'GITHUB_PERSONAL_ACCESS_TOKEN' },
  });
  if (!('stdio' in server.upstream)) throw new Error('unreachable');
  await assert.rejects(startStdioServer(server, server.upstream.stdio, { logger: createLogger('silent'), idpTokens: noIdpTokens }), {
    code: ErrorCode.CONFIG_INVALID,
  });
});

test('after shutdown the supervisor refuses new connections with its code, answered as "server unavailable"', async (t) => {
  const { stdio } = await start(t);
  await stdio.close();
  assert.throws(
    () => stdio.supervisor.connectionFor('corp:alice'),
    (error: unknown) => hasErrorCode(error, ErrorCode.STDIO_SHUTTING_DOWN) && (error as JsonRpcFailure).rpcCode === JsonRpcCode.SERVER_UNAVAILABLE,
  );
});

test('a body over maxRequestBytes gets 413 with its JSON-RPC code, on both transports', async (t) => {
  const { stdio, logs } = await start(t, {}, { maxRequestBytes: 1024 });
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...stdio.headersFor('corp:alice') };
  const big = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: { pad: 'x'.repeat(2048) } });
  const streamable = await fetch(stdio.url, { method: 'POST', headers, body: big });
  assert.equal(streamable.status, 413);
  assert.equal(await jsonRpcErrorCode(streamable), JsonRpcCode.REQUEST_TOO_LARGE);
  const { controller, endpoint } = await openLegacyStream(stdio, 'corp:alice');
  const legacy = await fetch(`${stdio.url}/${endpoint}`, { method: 'POST', headers, body: big });
  assert.equal(legacy.status, 413);
  assert.equal(await jsonRpcErrorCode(legacy), JsonRpcCode.REQUEST_TOO_LARGE);
  controller.abort();
  assert.equal(logs.filter((line) => line.event === 'stdio.bad_request').length, 2);
  // Under the cap, the same bridge serves as usual.
  const client = await connect(t, stdio, 'corp:alice');
  assert.equal(await callText(client, 'echo', { text: 'small enough' }), 'small enough');
});
