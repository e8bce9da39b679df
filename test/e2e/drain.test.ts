/**
 * Graceful shutdown under load, with real processes (docs/operations.md, "Graceful shutdown"): the
 * gateway is spawned through its CLI (`serve --config`), a user logs in through the real IdP with
 * the official SDK client, several long tool calls (`slow_count` on the built-in demo server) and a
 * call to a stdio server are in flight, a standalone SSE stream is open; then SIGTERM.
 *
 * Asserted: every call in flight completes with its full answer (no reset, no error); the SSE stream
 * ends cleanly (the chunked body is terminated, the reader sees `done`); the listener refuses new
 * connections while the calls still run; `/readyz` on the metrics listener answers 503 `draining`;
 * the stdio child is stopped; the process exits 0 within the drain period.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { Browser } from '../support/browser.ts';
import { connectWithLogin, TestOAuthClientProvider } from '../support/mcp-client.ts';
import { type OidcIdp, startOidcIdp } from '../support/oidc-idp.ts';
import { freePort, waitForUrl } from '../support/ports.ts';
import { parseExposition, sampleValue } from '../support/prometheus.ts';
import { STDIO_TEST_SERVER } from '../support/stdio-test-server.ts';
import { createTestCa, createTrustingFetch, type TestCa } from '../support/tls.ts';
import { USERS } from './stack.ts';

const CLI = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const DRAIN_SECONDS = 12;

/** Resolves with the exit code (and the time it happened) once the child exits. */
function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }> {
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })));
}

/** Reads an SSE body to its end; resolves `clean` when the stream finished, or the error that cut it. */
async function readToEnd(body: ReadableStream<Uint8Array>): Promise<{ clean: boolean; error?: unknown; text: string }> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { clean: true, text };
      text += decoder.decode(value, { stream: true });
    }
  } catch (error) {
    return { clean: false, error, text };
  }
}

/** True when a fresh TCP connection to the port is refused. */
async function refusesConnections(url: string): Promise<boolean> {
  try {
    await fetch(url, { headers: { connection: 'close' }, signal: AbortSignal.timeout(2_000) });
    return false;
  } catch (error) {
    const code = (error as { cause?: { code?: string } }).cause?.code;
    return code === 'ECONNREFUSED';
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('graceful shutdown (SIGTERM) under load', () => {
  let ca: TestCa;
  let idp: OidcIdp;
  let dir: string;
  let child: ChildProcess;
  let issuer: string;
  let opsUrl: string;
  let stdout = '';
  let client: Client | undefined;
  const trustingFetch = () => createTrustingFetch(ca.caPem);

  before(async () => {
    ca = await createTestCa();
    const port = await freePort();
    const opsPort = await freePort();
    issuer = `http://localhost:${port}`;
    opsUrl = `http://127.0.0.1:${opsPort}`;
    idp = await startOidcIdp({ clientId: 'mcp-gateway', clientSecret: 'idp-app-secret-value-0123456789', redirectUris: [`${issuer}/callback`], users: USERS });
    dir = await mkdtemp(join(tmpdir(), 'mcpgw-drain-'));
    const config = {
      publicUrl: issuer,
      listen: { host: '127.0.0.1', port },
      dataDir: dir,
      storage: { type: 'sqlite' },
      extraCaCertificatesFile: ca.caFile,
      identityProviders: [{ type: 'oidc', id: 'corp', issuer: idp.issuer, clientId: idp.clientId, clientSecret: idp.clientSecret }],
      servers: [
        { name: 'demo', path: '/mcp', upstream: { builtin: 'demo' } },
        { name: 'local', path: '/local', upstream: { stdio: { command: process.execPath, args: [STDIO_TEST_SERVER], stopGracePeriod: 1 } } },
      ],
      metrics: { enabled: true, listen: { host: '127.0.0.1', port: opsPort } },
      shutdown: { drainSeconds: DRAIN_SECONDS },
      log: { level: 'info' },
    };
    await writeFile(join(dir, 'gateway.json'), JSON.stringify(config));
    child = spawn(process.execPath, [CLI, 'serve', '--config', join(dir, 'gateway.json')], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    await waitForUrl(`${opsUrl}/healthz`, { ok: (status) => status === 200 });
  });

  after(async () => {
    await client?.close().catch(() => undefined);
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await idp?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('lets calls in flight finish, ends the SSE stream cleanly, refuses new connections and exits 0', async () => {
    const mcpFetch = trustingFetch();
    // A real login through the IdP per MCP server (each token's audience is one server).
    const logIn = (path: string, provider: TestOAuthClientProvider) => {
      const browser = new Browser({ ca: ca.caPem });
      return connectWithLogin({
        mcpUrl: `${issuer}${path}`,
        provider,
        fetch: mcpFetch,
        login: async (authorizationUrl) => {
          const consent = await browser.goto(authorizationUrl, { stopAt: provider.redirectUrl });
          const idpPage = await browser.submitForm(consent, { button: 'approve' });
          return (await idp.signIn(browser, idpPage, 'alice', { stopAt: provider.redirectUrl })).url;
        },
      });
    };
    const provider = new TestOAuthClientProvider({ mode: 'dcr', clientName: 'Drain test' });
    client = await logIn('/mcp', provider);
    const token = (await provider.tokens())?.access_token;
    assert.ok(token, 'a real token from a real login');
    const auth = { authorization: `Bearer ${token}` };

    // A stdio server process, spawned by the gateway, answering through the bridge.
    const stdioClient = await logIn('/local', new TestOAuthClientProvider({ mode: 'dcr', clientName: 'Drain test (stdio)' }));
    const pidResult = await stdioClient.callTool({ name: 'pid', arguments: {} });
    const stdioPid = Number((pidResult.content as Array<{ text: string }>)[0]?.text);
    assert.ok(processAlive(stdioPid), 'the stdio server runs');

    // A standalone SSE stream in a session of its own (one GET stream per session).
    const init = await fetch(`${issuer}/mcp`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
      }),
    });
    assert.equal(init.status, 200);
    await init.text();
    const session = init.headers.get('mcp-session-id');
    assert.ok(session);
    const sessionHeaders = { ...auth, 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' };
    const initialized = await fetch(`${issuer}/mcp`, {
      method: 'POST',
      headers: { ...sessionHeaders, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    });
    assert.equal(initialized.status, 202);
    const stream = await fetch(`${issuer}/mcp`, { headers: { ...sessionHeaders, accept: 'text/event-stream' } });
    assert.equal(stream.status, 200);
    assert.match(stream.headers.get('content-type') ?? '', /^text\/event-stream/);
    const streamEnd = readToEnd(stream.body as ReadableStream<Uint8Array>);

    // Long calls in flight: each has sent its first progress notification before SIGTERM.
    const calls: Array<Promise<unknown>> = [];
    const started: Array<Promise<void>> = [];
    for (let i = 0; i < 4; i++) {
      let markStarted!: () => void;
      started.push(new Promise<void>((resolve) => (markStarted = resolve)));
      calls.push(
        client.callTool({ name: 'slow_count', arguments: { count: 8, intervalMs: 250 } }, undefined, {
          onprogress: () => markStarted(),
          timeout: 60_000,
        }),
      );
    }
    // One longer call keeps the drain (and so the metrics listener) open while the four are checked
    // through /metrics; without it the process may already be gone when the scrape connects.
    let anchorStarted!: () => void;
    const anchorRunning = new Promise<void>((resolve) => (anchorStarted = resolve));
    const anchor = client.callTool({ name: 'slow_count', arguments: { count: 16, intervalMs: 250 } }, undefined, {
      onprogress: () => anchorStarted(),
      timeout: 60_000,
    });
    await Promise.all([...started, anchorRunning]);
    const readyBefore = await fetch(`${opsUrl}/readyz`);
    assert.equal(readyBefore.status, 200);
    await readyBefore.text();

    const exit = exited(child);
    const signalledAt = Date.now();
    child.kill('SIGTERM');

    // Draining: /readyz on the metrics listener says so, and the public listener takes no new connection.
    const draining = await waitForUrl(`${opsUrl}/readyz`, { ok: (status) => status === 503, timeoutMs: 5_000, intervalMs: 20 });
    assert.equal(((await draining.json()) as { status: string }).status, 'draining');
    let refused = false;
    for (const deadline = Date.now() + 5_000; !refused && Date.now() < deadline; ) refused = await refusesConnections(`${issuer}/healthz`);
    assert.ok(refused, 'new connections are refused during the drain');

    // The SSE stream was ended, cleanly, long before the calls finished.
    const ended = await streamEnd;
    assert.equal(ended.clean, true, `the SSE stream was cut: ${String(ended.error)}`);

    // Every call in flight at SIGTERM finishes with its whole answer.
    const results = await Promise.allSettled(calls);
    for (const result of results) {
      assert.equal(result.status, 'fulfilled', `a call in flight failed: ${result.status === 'rejected' ? String(result.reason) : ''}`);
      const content = (result as PromiseFulfilledResult<{ content: Array<{ text: string }> }>).value.content;
      assert.match(content.map((part) => part.text).join(' '), /8/);
    }
    const scrapeDuringDrain = await fetch(`${opsUrl}/metrics`);
    const samples = parseExposition(await scrapeDuringDrain.text());
    assert.equal(sampleValue(samples, 'mcp_gateway_mcp_requests_total', { server: 'demo', method: 'tools/call', tool: 'slow_count', status: '200' }), 4);
    assert.equal(sampleValue(samples, 'mcp_gateway_mcp_requests_total', { server: 'demo', method: 'tools/call', tool: 'slow_count', status: 'aborted' }), 0);

    const anchored = (await anchor) as { content: Array<{ text: string }> };
    assert.match(anchored.content.map((part) => part.text).join(' '), /16/, 'the longest call in flight finished too');

    const { code, signal, at } = await exit;
    assert.equal(signal, null);
    assert.equal(code, 0, stdout.slice(-3_000));
    assert.ok(at - signalledAt < DRAIN_SECONDS * 1000, `exited ${at - signalledAt} ms after SIGTERM (drain period ${DRAIN_SECONDS} s)`);
    assert.equal(processAlive(stdioPid), false, 'the stdio server was stopped');

    // The log tells the story, flushed before exit.
    const events = stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const drained = events.find((line) => line.event === 'shutdown.drained');
    assert.ok(drained, 'the drain was logged');
    assert.equal(drained.cut, 0);
    assert.ok((drained.streamsEnded as number) >= 1);
    await stdioClient.close().catch(() => undefined);
  });
});
