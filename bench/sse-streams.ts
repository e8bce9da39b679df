/**
 * Benchmark: memory per idle SSE stream through the gateway. Opens N Streamable HTTP sessions on the
 * demo MCP server (official SDK) through the gateway, authenticated, then the standalone GET SSE stream
 * of each, and holds them open. Reports the gateway's RSS before and after, and per stream.
 *
 * Layout as bench/run.ts: this process (the clients) on core 0, gateway and upstream on core 1, when
 * `taskset` exists. Usage: `npx node bench/sse-streams.ts [--streams 1000] [--settle 3]`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashPassword } from '../src/upstream/passwords.ts';
import { Browser } from '../test/support/browser.ts';
import { freePort, waitForUrl } from '../test/support/ports.ts';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '');
const STREAMS = Number(args.get('streams') ?? 1000);
const SETTLE_SECONDS = Number(args.get('settle') ?? 3);
const TASKSET = existsSync('/usr/bin/taskset');
const repoRoot = new URL('..', import.meta.url).pathname;
const PROTOCOL = '2025-06-18';

function spawnNode(core: number, script: string, scriptArgs: string[]): ChildProcess {
  const command = TASKSET ? 'taskset' : process.execPath;
  const commandArgs = TASKSET ? ['-c', String(core), process.execPath, script, ...scriptArgs] : [script, ...scriptArgs];
  const verbose = process.env.BENCH_VERBOSE === '1';
  return spawn(command, commandArgs, { cwd: repoRoot, env: process.env, stdio: ['ignore', verbose ? 'inherit' : 'ignore', 'inherit'] });
}

async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(status.match(/VmRSS:\s+(\d+) kB/)?.[1]);
}

/** Register, consent, local sign-in, code for token: the flow a person goes through once. */
async function accessToken(issuer: string, password: string, resource: string): Promise<string> {
  const redirectUri = 'http://127.0.0.1:9/callback';
  const registration = await fetch(`${issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: 'sse bench', redirect_uris: [redirectUri], token_endpoint_auth_method: 'none' }),
  });
  const { client_id: clientId } = (await registration.json()) as { client_id: string };
  const verifier = randomBytes(32).toString('base64url');
  const authorize = new URL('/authorize', issuer);
  const params = {
    response_type: 'code', client_id: clientId, redirect_uri: redirectUri, state: 'bench', resource,
    code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256',
  };
  for (const [key, value] of Object.entries(params)) authorize.searchParams.set(key, value);
  const browser = new Browser();
  let page = await browser.goto(authorize);
  page = await browser.submitForm(page, { button: 'approve' });
  page = await browser.submitForm(page, { fields: { username: 'bench', password }, stopAt: redirectUri });
  const code = page.url.searchParams.get('code');
  if (!code) throw new Error(`login failed at ${page.url.href}`);
  const token = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier, client_id: clientId, resource }),
  });
  return ((await token.json()) as { access_token: string }).access_token;
}

/** initialize + notifications/initialized; returns the session id. */
async function openSession(url: string, authorization: string): Promise<string> {
  const headers = { authorization, 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  const init = await fetch(url, {
    method: 'POST',
    headers,
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: 'sse-bench', version: '1' } } }),
  });
  await init.text();
  const session = init.headers.get('mcp-session-id');
  if (!session) throw new Error(`initialize answered ${init.status} without a session`);
  const initialized = await fetch(url, {
    method: 'POST',
    headers: { ...headers, 'mcp-session-id': session, 'mcp-protocol-version': PROTOCOL },
    body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
  });
  await initialized.text();
  return session;
}

/** Opens the session's GET SSE stream on its own connection and resolves once the headers arrived. */
function openStream(url: string, authorization: string, session: string): Promise<{ req: ClientRequest; res: IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'GET',
      agent: false,
      headers: { authorization, accept: 'text/event-stream', 'mcp-session-id': session, 'mcp-protocol-version': PROTOCOL },
    }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`GET stream answered ${res.statusCode}`));
        res.resume();
        return;
      }
      res.on('data', () => undefined);
      resolve({ req, res });
    });
    req.on('error', reject);
    req.end();
  });
}

async function inBatches<T>(count: number, size: number, task: (index: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let start = 0; start < count; start += size) {
    const batch = await Promise.all(Array.from({ length: Math.min(size, count - start) }, (_, i) => task(start + i)));
    out.push(...batch);
  }
  return out;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mcpgw-sse-bench-'));
  const children: ChildProcess[] = [];
  const streams: Array<{ req: ClientRequest }> = [];
  try {
    if (TASKSET) spawnSync('taskset', ['-cp', '0', String(process.pid)], { stdio: 'ignore' });
    const upstreamPort = await freePort();
    const upstream = spawnNode(1, 'src/demo/server.ts', ['--port', String(upstreamPort)]);
    children.push(upstream);
    const upstreamUrl = `http://127.0.0.1:${upstreamPort}/mcp`;
    await waitForUrl(upstreamUrl, { timeoutMs: 15_000, ok: () => true });

    const port = await freePort();
    const issuer = `http://localhost:${port}`;
    const password = randomBytes(12).toString('base64url');
    const config = {
      publicUrl: issuer,
      listen: { host: '127.0.0.1', port },
      dataDir: join(dir, 'data'),
      log: { level: 'warn' },
      identityProviders: [{ type: 'local', users: [{ username: 'bench', passwordHash: await hashPassword(password) }] }],
      servers: [{ name: 'sdk', path: '/mcp', upstream: { url: upstreamUrl }, identityHeaders: { subject: 'x-user-id' } }],
    };
    const configPath = join(dir, 'gateway.json');
    await writeFile(configPath, JSON.stringify(config));
    const gateway = spawnNode(1, 'src/cli/main.ts', ['serve', '--config', configPath]);
    children.push(gateway);
    await waitForUrl(`${issuer}/healthz`, { timeoutMs: 20_000 });

    const url = `${issuer}/mcp`;
    const authorization = `Bearer ${await accessToken(issuer, password, url)}`;
    const sessions = await inBatches(STREAMS, 50, () => openSession(url, authorization));
    await new Promise((resolve) => setTimeout(resolve, SETTLE_SECONDS * 1000));
    const gatewayBefore = await rssKiB(gateway.pid!);
    const upstreamBefore = await rssKiB(upstream.pid!);

    const started = Date.now();
    const opened = await inBatches(STREAMS, 100, (index) => openStream(url, authorization, sessions[index]!));
    streams.push(...opened);
    const openMs = Date.now() - started;
    await new Promise((resolve) => setTimeout(resolve, SETTLE_SECONDS * 1000));
    const gatewayAfter = await rssKiB(gateway.pid!);
    const upstreamAfter = await rssKiB(upstream.pid!);

    // Still serving while the streams are open: one tools/call on a fresh session.
    const probeSession = sessions[0]!;
    const probe = await fetch(url, {
      method: 'POST',
      headers: { authorization, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': probeSession, 'mcp-protocol-version': PROTOCOL },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { text: 'alive' } } }),
    });
    const probeOk = probe.status === 200 && (await probe.text()).includes('alive');

    const mib = (kib: number): string => (kib / 1024).toFixed(1);
    console.log(`${STREAMS} idle GET SSE streams through the gateway (demo MCP server upstream)${TASKSET ? '; clients on core 0, gateway and upstream on core 1' : ''}`);
    console.log(`opened in ${openMs} ms; a tools/call while they are open: ${probeOk ? 'ok' : 'FAILED'}`);
    console.log(`gateway RSS: ${mib(gatewayBefore)} MiB before, ${mib(gatewayAfter)} MiB with the streams open: ${((gatewayAfter - gatewayBefore) / STREAMS).toFixed(1)} KiB per stream`);
    console.log(`upstream RSS: ${mib(upstreamBefore)} MiB before, ${mib(upstreamAfter)} MiB after (${((upstreamAfter - upstreamBefore) / STREAMS).toFixed(1)} KiB per stream, for comparison)`);
    if (!probeOk) process.exitCode = 1;
  } finally {
    for (const stream of streams) stream.req.destroy();
    await Promise.all(children.map((child) => new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    })));
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
