/**
 * `workers: 2` (src/cli/workers.ts): `serve` started with the CLI forks two workers that share the
 * listener and the SQLite file. A person logs in (each step on whichever worker takes the connection),
 * and the token works on both workers: MCP calls on fresh connections are spread over both (their log
 * lines name the worker), and each is answered. SIGTERM to the primary stops every worker.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type DemoServer, startDemoServer } from '../../src/demo/server.ts';
import { hashPassword } from '../../src/idp/passwords.ts';
import { loginWithLocalAccount } from '../support/local-login.ts';
import { freePort, waitForUrl } from '../support/ports.ts';
import { processAlive } from '../support/processes.ts';

const repoRoot = new URL('../..', import.meta.url).pathname;

/** One request on a connection of its own, so the primary may hand it to either worker. */
function freshConnection(url: string, headers: Record<string, string>, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent: false, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('serve with two workers', () => {
  let dir: string;
  let demo: DemoServer;
  let gateway: ChildProcess;
  let issuer: string;
  let password: string;
  const logLines: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mcpgw-workers-'));
    demo = await startDemoServer();
    const port = await freePort();
    issuer = `http://localhost:${port}`;
    password = randomBytes(12).toString('base64url');
    const config = {
      publicUrl: issuer,
      listen: { host: '127.0.0.1', port },
      dataDir: join(dir, 'data'),
      workers: 2,
      log: { level: 'debug' },
      identityProviders: [{ type: 'local', users: [{ username: 'ada', passwordHash: await hashPassword(password), email: 'ada@example.com' }] }],
      servers: [{ name: 'demo', path: '/mcp', upstream: { url: demo.url } }],
    };
    const configPath = join(dir, 'gateway.json');
    await writeFile(configPath, JSON.stringify(config));
    gateway = spawn(process.execPath, ['src/cli/main.ts', 'serve', '--config', configPath], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
    let partial = '';
    gateway.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      logLines.push(...lines);
    });
    await waitForUrl(`${issuer}/healthz`, { timeoutMs: 30_000 });
  });

  after(async () => {
    if (gateway.exitCode === null && gateway.signalCode === null) {
      gateway.kill('SIGKILL');
      await new Promise((resolve) => gateway.once('exit', resolve));
    }
    await demo?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('logs in, and answers MCP calls on both workers with the token one of them issued', async () => {
    // Both workers up: the primary announces them once the first listens.
    await waitFor(() => logLines.some((line) => line.includes('2 workers started')), 30_000, 'the second worker never started');
    const token = await loginWithLocalAccount(issuer, { username: 'ada', password, resource: `${issuer}/mcp`, clientName: 'workers-test' });
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const initialize = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'workers-test', version: '1' } },
    });
    for (let i = 0; i < 20; i++) {
      const answer = await freshConnection(`${issuer}/mcp`, headers, initialize);
      assert.equal(answer.status, 200, answer.text);
      assert.match(answer.text, /mcp-oauth-gateway-demo/);
    }
    // Which worker took a connection shows in its debug line for a refused token.
    for (let i = 0; i < 20; i++) {
      const refused = await freshConnection(`${issuer}/mcp`, { ...headers, authorization: 'Bearer not-a-token' }, initialize);
      assert.equal(refused.status, 401);
    }
    await waitFor(() => workersSeen(logLines).size === 2, 10_000, `requests reached workers ${[...workersSeen(logLines)]}`);
  });

  it('stops every worker on SIGTERM to the primary', async () => {
    const workerPids = childrenOf(gateway.pid!);
    assert.equal(workerPids.length, 2, 'the primary has its two workers');
    gateway.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => gateway.once('exit', (exit) => resolve(exit)));
    assert.equal(code, 0);
    for (const pid of workerPids) assert.equal(processAlive(pid), false, `worker ${pid} outlived the primary`);
  });
});

describe('serve with two workers, stopped with Ctrl-C', () => {
  let dir: string;
  let demo: DemoServer;
  let gateway: ChildProcess;
  const logLines: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mcpgw-workers-int-'));
    demo = await startDemoServer();
    const port = await freePort();
    const config = {
      publicUrl: `http://localhost:${port}`,
      listen: { host: '127.0.0.1', port },
      dataDir: join(dir, 'data'),
      workers: 2,
      identityProviders: [{ type: 'local', users: [{ username: 'ada', passwordHash: await hashPassword('x'.repeat(16)), email: 'ada@example.com' }] }],
      servers: [{ name: 'demo', path: '/mcp', upstream: { url: demo.url } }],
    };
    const configPath = join(dir, 'gateway.json');
    await writeFile(configPath, JSON.stringify(config));
    // Its own process group, as a terminal's foreground job: Ctrl-C signals the primary and the workers.
    gateway = spawn(process.execPath, ['src/cli/main.ts', 'serve', '--config', configPath], {
      cwd: repoRoot,
      detached: true,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let partial = '';
    gateway.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      logLines.push(...lines);
    });
    // Each worker's own "listening" line: `serve` sets its signal handlers as `startGateway` returns.
    const listening = () => logLines.map(safeJson).filter((line) => line?.msg === 'gateway listening').length;
    await waitFor(() => listening() === 2, 30_000, 'both workers listening');
  });

  after(async () => {
    if (gateway.exitCode === null && gateway.signalCode === null) {
      process.kill(-gateway.pid!, 'SIGKILL');
      await new Promise((resolve) => gateway.once('exit', resolve));
    }
    await demo?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('drains each worker once: the signal they get too is not taken for a second, forcing one', async () => {
    const workerPids = childrenOf(gateway.pid!);
    assert.equal(workerPids.length, 2, 'the primary has its two workers');
    process.kill(-gateway.pid!, 'SIGINT');
    const code = await new Promise<number | null>((resolve) => gateway.once('exit', (exit) => resolve(exit)));
    assert.equal(code, 0);
    const events = logLines.map(safeJson).map((line) => line?.event);
    assert.equal(events.filter((event) => event === 'shutdown.started').length, 2, 'each worker drained');
    assert.equal(events.includes('shutdown.forced'), false, 'no worker was forced to exit');
    for (const pid of workerPids) assert.equal(processAlive(pid), false, `worker ${pid} outlived the primary`);
  });
});

/** Pids whose parent is `pid` (/proc). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(entry));
    } catch {
      // The process ended meanwhile.
    }
  }
  return out;
}

function safeJson(line: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

function workersSeen(lines: readonly string[]): Set<number> {
  const seen = new Set<number>();
  for (const line of lines) {
    const parsed = safeJson(line);
    if (parsed?.msg === 'access token refused' && typeof parsed.worker === 'number') seen.add(parsed.worker);
  }
  return seen;
}

async function waitFor(condition: () => boolean, timeoutMs: number, message: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(message);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
