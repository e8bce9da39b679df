/**
 * stdio MCP servers through the whole gateway: OAuth login at the real IdP stand-in, the SDK client
 * over Streamable HTTP and over the older HTTP+SSE transport, real child processes (this repo's
 * test server and @modelcontextprotocol/server-everything), shared and per-user modes, the user's IdP
 * token in the per-user process's environment and a recycled process once it expires, crash and
 * restart, idle stop, the process cap, and no child left after the gateway closes.
 */

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { ClientCapabilities } from '@modelcontextprotocol/sdk/types.js';
import { CreateMessageRequestSchema, ElicitRequestSchema, ListRootsRequestSchema, McpError } from '@modelcontextprotocol/sdk/types.js';
import { TestClock } from '../support/clock.ts';
import { event, type LogLine, LogWatch } from '../support/log-watch.ts';
import { TestOAuthClientProvider } from '../support/mcp-client.ts';
import { processAlive } from '../support/processes.ts';
import { STDIO_TEST_SERVER } from '../support/stdio-test-server.ts';
import { loggedInClient, type Stack, startStack, USERS } from './stack.ts';

const EVERYTHING = new URL('../../node_modules/@modelcontextprotocol/server-everything/dist/index.js', import.meta.url).pathname;
const HAVE_EVERYTHING = existsSync(EVERYTHING);
/** IdP access tokens live this long; the per-user test moves the gateway clock to within RECYCLE_MARGIN of it. */
const IDP_TOKEN_TTL = 12;
const RECYCLE_MARGIN = 6;

const testServer = (extra: Record<string, unknown> = {}) => ({ stdio: { command: process.execPath, args: [STDIO_TEST_SERVER], stopGracePeriod: 1, ...extra } });

async function text(client: Client, name: string, args: Record<string, unknown> = {}): Promise<string> {
  const result = await client.callTool({ name, arguments: args });
  return (result.content as Array<{ text?: string }>)[0]?.text ?? '';
}

describe('stdio MCP servers behind the gateway', () => {
  let stack: Stack;
  /**
   * The gateway's clock: it stamps the IdP token's expiry and decides when a process is recycled, so
   * the test moves it past the recycle point instead of waiting for the token to age.
   */
  const clock = new TestClock();
  /**
   * The gateway's logs: a child's stderr and the end of each process stop show up only there, so the
   * tests await those lines instead of polling.
   */
  const watch = new LogWatch('debug');
  /** Every child pid seen, to check that none is left after the gateway closes. */
  const pids = new Set<number>();
  const clients: Client[] = [];

  /** Logs `username` in for the server at `path`, then connects a client with the given transport and capabilities. */
  async function connect(path: string, username: keyof typeof USERS, options: { sse?: boolean; capabilities?: ClientCapabilities } = {}): Promise<Client> {
    const provider = new TestOAuthClientProvider({ mode: 'dcr', clientName: `stdio e2e ${username}` });
    const login = await loggedInClient(stack, provider, { mcpPath: path, username });
    if (!options.sse && !options.capabilities) {
      clients.push(login);
      return login;
    }
    await login.close();
    const url = new URL(`${stack.mcpUrl(path)}${options.sse ? '/sse' : ''}`);
    const transport = options.sse
      ? new SSEClientTransport(url, { authProvider: provider, fetch: stack.fetch })
      : new StreamableHTTPClientTransport(url, { authProvider: provider, fetch: stack.fetch });
    const client = new Client({ name: 'stdio-e2e', version: '1.0.0' }, { capabilities: options.capabilities ?? {} });
    await client.connect(transport);
    clients.push(client);
    return client;
  }

  async function pidOf(client: Client): Promise<number> {
    const pid = Number(await text(client, 'pid'));
    pids.add(pid);
    return pid;
  }

  before(async () => {
    stack = await startStack({
      clock,
      logger: watch.logger,
      idpTtl: { accessToken: IDP_TOKEN_TTL },
      extraServers: [
        { name: 'stdio-shared', path: '/stdio/shared', upstream: testServer({ restartBackoff: { initialMs: 100, maxMs: 1000 } }) },
        {
          name: 'stdio-user',
          path: '/stdio/user',
          upstream: testServer({ mode: 'per-user', recycleBeforeExpiry: RECYCLE_MARGIN }),
          idpToken: { env: 'IDP_ACCESS_TOKEN' },
        },
        { name: 'stdio-small', path: '/stdio/small', upstream: testServer({ mode: 'per-user', idleTimeout: 1, maxProcesses: 1 }) },
        ...(HAVE_EVERYTHING
          ? [
              { name: 'everything', path: '/everything', upstream: { stdio: { command: process.execPath, args: [EVERYTHING, 'stdio'], stopGracePeriod: 1 } } },
              {
                name: 'everything-user',
                path: '/everything/user',
                upstream: { stdio: { command: process.execPath, args: [EVERYTHING, 'stdio'], mode: 'per-user' as const, stopGracePeriod: 1 } },
                idpToken: { env: 'GITHUB_PERSONAL_ACCESS_TOKEN' },
              },
            ]
          : []),
      ],
    });
  });

  after(async () => {
    for (const client of clients) await client.close().catch(() => undefined);
    await stack?.close();
  });

  test('shared: both users reach one process, over Streamable HTTP and the older HTTP+SSE transport', async () => {
    const alice = await connect('/stdio/shared', 'alice');
    const bob = await connect('/stdio/shared', 'bob', { sse: true });
    assert.equal(await text(alice, 'echo', { text: 'through the gateway' }), 'through the gateway');
    assert.equal(await pidOf(alice), await pidOf(bob));
    // Larger than a pipe buffer and than 1 MiB, both ways, through the gateway.
    assert.equal((await text(bob, 'big', { bytes: 2 * 1024 * 1024 })).length, 2 * 1024 * 1024);
    const long = 'z'.repeat(1_200_000);
    assert.equal(await text(alice, 'echo', { text: long }), long);
  });

  test('shared: sampling, elicitation, roots, progress and cancellation cross the gateway', async () => {
    const capabilities: ClientCapabilities = { sampling: {}, elicitation: {}, roots: {} };
    for (const sse of [false, true]) {
      const client = await connect('/stdio/shared', 'alice', { sse, capabilities });
      client.setRequestHandler(CreateMessageRequestSchema, () => ({
        role: 'assistant',
        model: 'm',
        content: { type: 'text', text: `sampled by ${sse ? 'sse' : 'http'}` },
      }));
      client.setRequestHandler(ElicitRequestSchema, () => ({ action: 'accept', content: { name: 'Alice' } }));
      client.setRequestHandler(ListRootsRequestSchema, () => ({ roots: [{ uri: 'file:///home/alice' }] }));
      assert.equal(await text(client, 'sample', { prompt: 'x' }), `sampled: sampled by ${sse ? 'sse' : 'http'}`);
      assert.equal(await text(client, 'elicit'), 'elicited: accept Alice');
      assert.equal(await text(client, 'roots'), 'file:///home/alice');

      const progress: number[] = [];
      const done = await client.callTool({ name: 'slow', arguments: { steps: 3, delayMs: 10 } }, undefined, { onprogress: (p) => progress.push(p.progress) });
      assert.match(JSON.stringify(done.content), /done 3/);
      // The SDK client handles notifications a microtask late and drops the progress handler on the
      // response, so the last progress may be lost when it arrives in the same read as the response.
      assert.deepEqual(progress, [1, 2, 3].slice(0, progress.length));
      assert.ok(progress.length >= 2, `progress ${progress.join(',')}`);

      const before = JSON.parse(await text(client, 'stats')) as { cancelled: number };
      const controller = new AbortController();
      const seen = watch.next(
        (line: LogLine) => line.server === 'stdio-shared' && line.stream === 'stderr' && line.msg === 'stdio-test-server slow call cancelled',
        'the process to see the cancellation',
      );
      const call = client.callTool({ name: 'slow', arguments: { steps: 50, delayMs: 100 } }, undefined, {
        signal: controller.signal,
        onprogress: (p) => {
          if (p.progress === 1) controller.abort('stop');
        },
      });
      await assert.rejects(call);
      // The process reports the stopped call on stderr; its count has the cancellation by then.
      await seen;
      const cancelled = (JSON.parse(await text(client, 'stats')) as { cancelled: number }).cancelled;
      assert.equal(cancelled, before.cancelled + 1, 'the cancellation reached the process');
    }
  });

  test('shared: a crash fails the call with a JSON-RPC error, and the server is back after a restart', async () => {
    const client = await connect('/stdio/shared', 'bob');
    const before = await pidOf(client);
    await assert.rejects(client.callTool({ name: 'crash' }), (error: unknown) => error instanceof McpError && error.code === -32000);
    const after = await pidOf(client);
    assert.notEqual(after, before);
    assert.equal(processAlive(before), false);
  });

  test("per-user: two users isolated, each process holding its own user's IdP token, recycled when it expires", async () => {
    const alice = await connect('/stdio/user', 'alice');
    const bob = await connect('/stdio/user', 'bob', { sse: true });
    const alicePid = await pidOf(alice);
    const bobPid = await pidOf(bob);
    assert.notEqual(alicePid, bobPid);
    const aliceToken = await text(alice, 'env', { name: 'IDP_ACCESS_TOKEN' });
    const bobToken = await text(bob, 'env', { name: 'IDP_ACCESS_TOKEN' });
    assert.notEqual(aliceToken, '<unset>');
    assert.notEqual(aliceToken, bobToken);
    // It is the IdP's token for that very user: the IdP's userinfo endpoint says whose it is.
    const discovery = (await (await stack.fetch(`${stack.idp.issuer}/.well-known/openid-configuration`)).json()) as { userinfo_endpoint: string };
    const whoAlice = (await (await stack.fetch(discovery.userinfo_endpoint, { headers: { authorization: `Bearer ${aliceToken}` } })).json()) as {
      email?: string;
    };
    assert.equal(whoAlice.email, USERS.alice.email);
    const whoBob = (await (await stack.fetch(discovery.userinfo_endpoint, { headers: { authorization: `Bearer ${bobToken}` } })).json()) as { email?: string };
    assert.equal(whoBob.email, USERS.bob.email);
    // The gateway's own environment stays out of the child.
    assert.equal(await text(alice, 'env', { name: 'NODE_TEST_CONTEXT' }), '<unset>');
    // Not recycled on every request.
    assert.equal(await pidOf(alice), alicePid);

    // Once the token is within the recycle margin of its expiry, the next request gets a new process
    // started with a fresh token; the client's session carries on.
    clock.advance((IDP_TOKEN_TTL - RECYCLE_MARGIN + 1) * 1000);
    const freshToken = await text(alice, 'env', { name: 'IDP_ACCESS_TOKEN' });
    assert.notEqual(freshToken, aliceToken);
    const recycledPid = await pidOf(alice);
    assert.notEqual(recycledPid, alicePid);
    await watch.first(event('stdio.process_stopped', { pid: alicePid }), 'the old process to stop');
    assert.equal(processAlive(alicePid), false);
    const whoFresh = (await (await stack.fetch(discovery.userinfo_endpoint, { headers: { authorization: `Bearer ${freshToken}` } })).json()) as {
      email?: string;
    };
    assert.equal(whoFresh.email, USERS.alice.email);
  });

  test('per-user: the cap refuses a further user clearly; an idle process is stopped', async () => {
    const alice = await connect('/stdio/small', 'alice');
    const alicePid = await pidOf(alice);
    await assert.rejects(connect('/stdio/small', 'bob'), /limit of 1 running processes/);
    // Idle by the gateway's clock: moved past idleTimeout (1 s), it is the supervisor's own sweep
    // timer (every quarter of the timeout) that notices and stops the process.
    clock.advance(1000);
    await watch.first(event('stdio.process_stopped', { pid: alicePid }), 'the idle process to stop');
    assert.equal(processAlive(alicePid), false);
    // With Alice's process gone, Bob fits under the cap; Alice's session carries on with a new process.
    const bob = await connect('/stdio/small', 'bob');
    const bobPid = await pidOf(bob);
    assert.notEqual(bobPid, alicePid);
    clock.advance(1000);
    await watch.first(event('stdio.process_stopped', { pid: bobPid }), "Bob's idle process to stop");
    assert.equal(processAlive(bobPid), false);
    assert.notEqual(await pidOf(alice), alicePid);
  });

  test('@modelcontextprotocol/server-everything, shared and per-user with the IdP token as GITHUB_PERSONAL_ACCESS_TOKEN', async (t) => {
    if (!HAVE_EVERYTHING) {
      t.skip('@modelcontextprotocol/server-everything is not installed');
      return;
    }
    const shared = await connect('/everything', 'alice', { sse: true });
    const echoed = await shared.callTool({ name: 'echo', arguments: { message: 'hi everything' } });
    assert.match(JSON.stringify(echoed.content), /hi everything/);

    const alice = await connect('/everything/user', 'alice');
    const bob = await connect('/everything/user', 'bob');
    const envOf = async (client: Client) => JSON.parse(await text(client, 'get-env')) as Record<string, string>;
    const aliceEnv = await envOf(alice);
    const bobEnv = await envOf(bob);
    assert.ok(aliceEnv.GITHUB_PERSONAL_ACCESS_TOKEN, 'the token variable is set');
    assert.notEqual(aliceEnv.GITHUB_PERSONAL_ACCESS_TOKEN, bobEnv.GITHUB_PERSONAL_ACCESS_TOKEN);
  });

  test('closing the gateway leaves no child process behind', async () => {
    assert.ok(pids.size >= 4, `saw ${pids.size} child processes`);
    const running = [...pids].filter(processAlive);
    assert.ok(running.length > 0, 'some children are running before the close');
    for (const client of clients.splice(0)) await client.close().catch(() => undefined);
    await stack.gateway.close();
    for (const pid of pids) assert.equal(processAlive(pid), false, `pid ${pid} still running`);
  });
});
