/**
 * Benchmark: an authenticated MCP `tools/call` through the gateway versus the same request sent
 * straight to the upstream, in one run, with autocannon. Prints req/s, p50, p99, the ratio, and the
 * gateway's own CPU time per request (from /proc, so the load generator's CPU is not counted).
 *
 * Two upstreams:
 * - `trivial`: a node:http server answering a fixed JSON-RPC result: the gateway's own cost shows.
 * - `mcp-sdk`: the demo MCP server (official SDK, Streamable HTTP, stateful session).
 * Beside them, a bare node:http + undici proxy (bench/bare-proxy.ts, no auth) in front of the trivial
 * upstream: the floor of this HTTP stack, so the gateway's own share can be read off.
 *
 * Layout (DESIGN.md): load generator pinned to core 0, gateway and upstream to core 1, when `taskset`
 * exists. Usage: `npm run bench [-- --duration 10 --connections 32]`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import autocannon from 'autocannon';
import { hashPassword } from '../src/upstream/passwords.ts';
import { Browser } from '../test/support/browser.ts';
import { freePort, waitForUrl } from '../test/support/ports.ts';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '');
const DURATION = Number(args.get('duration') ?? 10);
const CONNECTIONS = Number(args.get('connections') ?? 32);
const TASKSET = existsSync('/usr/bin/taskset');
const repoRoot = new URL('..', import.meta.url).pathname;

function pinned(core: number, command: string, commandArgs: string[]): [string, string[]] {
  return TASKSET ? ['taskset', ['-c', String(core), command, ...commandArgs]] : [command, commandArgs];
}

function spawnNode(core: number, script: string, scriptArgs: string[], env: Record<string, string> = {}): ChildProcess {
  // BENCH_CPU_PROF=<dir> writes V8 CPU profiles of the children there (open them in Chrome DevTools).
  const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : [];
  const [command, commandArgs] = pinned(core, process.execPath, [...profile, script, ...scriptArgs]);
  // Child logs go to stderr only with BENCH_VERBOSE=1: per-request output would distort the figures.
  const verbose = process.env.BENCH_VERBOSE === '1';
  const child = spawn(command, commandArgs, { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', verbose ? 'inherit' : 'ignore', 'inherit'] });
  return child;
}

/** utime + stime of a process in microseconds (/proc/<pid>/stat, clock ticks of 10 ms). */
async function cpuMicros(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

/** The pid doing the work: under taskset, exec replaces taskset, so the child pid is node's. */
function workerPid(child: ChildProcess): number {
  return child.pid!;
}

async function rssMiB(pid: number): Promise<number> {
  const kib = (await readFile(`/proc/${pid}/status`, 'utf8')).match(/VmRSS:\s+(\d+) kB/)?.[1];
  return Math.round(Number(kib) / 1024);
}

interface Result {
  label: string;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  gatewayCpuPerRequestUs?: number;
}

async function load(label: string, url: string, headers: Record<string, string>, body: string, gatewayPid?: number): Promise<Result> {
  const before = gatewayPid ? await cpuMicros(gatewayPid) : 0;
  const result = await autocannon({ url, method: 'POST', headers, body, connections: CONNECTIONS, duration: DURATION, pipelining: 1 });
  const after = gatewayPid ? await cpuMicros(gatewayPid) : 0;
  const requests = result.requests.total;
  return {
    label,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
    gatewayCpuPerRequestUs: gatewayPid && requests > 0 ? (after - before) / requests : undefined,
  };
}

/** A full login as a person would do it (register, consent, local sign-in, code, token). */
async function obtainAccessToken(issuer: string, password: string, resource: string): Promise<string> {
  const redirectUri = 'http://127.0.0.1:9/callback';
  const registration = await fetch(`${issuer}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client_name: 'bench', redirect_uris: [redirectUri], token_endpoint_auth_method: 'none' }) });
  const { client_id: clientId } = (await registration.json()) as { client_id: string };
  const verifier = randomBytes(32).toString('base64url');
  const { createHash } = await import('node:crypto');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const authorize = new URL('/authorize', issuer);
  for (const [k, v] of Object.entries({ response_type: 'code', client_id: clientId, redirect_uri: redirectUri, code_challenge: challenge, code_challenge_method: 'S256', state: 'bench', resource })) authorize.searchParams.set(k, v);
  const browser = new Browser();
  let page = await browser.goto(authorize);
  page = await browser.submitForm(page, { button: 'approve' });
  page = await browser.submitForm(page, { fields: { username: 'bench', password }, stopAt: redirectUri });
  const code = page.url.searchParams.get('code');
  if (!code) throw new Error(`login failed at ${page.url.href}: ${page.text.slice(0, 200)}`);
  const token = await fetch(`${issuer}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier, client_id: clientId, resource }) });
  return ((await token.json()) as { access_token: string }).access_token;
}

async function initializeSession(url: string, headers: Record<string, string>): Promise<string | undefined> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'bench', version: '1' } } }),
  });
  await response.text();
  const session = response.headers.get('mcp-session-id') ?? undefined;
  if (session) {
    await fetch(url, { method: 'POST', headers: { ...headers, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' }, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) }).then((r) => r.text());
  }
  return session;
}

function fmt(result: Result, direct?: Result): string {
  const ratio = direct ? ` ratio ${(result.rps / direct.rps).toFixed(2)}` : '';
  const cpu = result.gatewayCpuPerRequestUs !== undefined ? ` gateway CPU ${result.gatewayCpuPerRequestUs.toFixed(0)} µs/req` : '';
  return `${result.label.padEnd(28)} ${result.rps.toFixed(0).padStart(7)} req/s  p50 ${String(result.p50).padStart(3)} ms  p99 ${String(result.p99).padStart(3)} ms  errors ${result.errors} non2xx ${result.non2xx}${ratio}${cpu}`;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mcpgw-bench-'));
  const children: ChildProcess[] = [];
  try {
    // Upstreams and gateway share core 1; this process (the load generator) keeps core 0.
    if (TASKSET) spawnSync('taskset', ['-cp', '0', String(process.pid)], { stdio: 'ignore' });
    const trivialPort = await freePort();
    children.push(spawnNode(1, 'bench/trivial-upstream.ts', ['--port', String(trivialPort)]));
    const trivial = { url: `http://127.0.0.1:${trivialPort}/mcp` };
    await waitForUrl(trivial.url, { timeoutMs: 15_000, ok: () => true });
    const barePort = await freePort();
    const bareChild = spawnNode(1, 'bench/bare-proxy.ts', ['--port', String(barePort), '--upstream', trivial.url]);
    children.push(bareChild);
    const bareUrl = `http://127.0.0.1:${barePort}/mcp`;
    await waitForUrl(bareUrl, { timeoutMs: 15_000, ok: () => true });
    const sdkPort = await freePort();
    const sdkChild = spawnNode(1, 'src/demo/server.ts', ['--port', String(sdkPort)]);
    children.push(sdkChild);
    const sdkUrl = `http://127.0.0.1:${sdkPort}/mcp`;
    await waitForUrl(sdkUrl, { timeoutMs: 15_000, ok: () => true });

    const port = await freePort();
    const issuer = `http://localhost:${port}`;
    const password = randomBytes(12).toString('base64url');
    const config = {
      publicUrl: issuer,
      listen: { host: '127.0.0.1', port },
      dataDir: join(dir, 'data'),
      log: { level: process.env.BENCH_VERBOSE === '1' ? 'debug' : 'warn' },
      identityProviders: [{ type: 'local', users: [{ username: 'bench', passwordHash: await hashPassword(password), email: 'bench@example.com' }] }],
      servers: [
        { name: 'trivial', path: '/trivial', upstream: { url: trivial.url } },
        { name: 'sdk', path: '/mcp', upstream: { url: sdkUrl }, identityHeaders: { email: 'x-user-email' } },
      ],
    };
    const configPath = join(dir, 'gateway.yaml');
    await writeFile(configPath, JSON.stringify(config));
    const gatewayChild = spawnNode(1, 'src/cli/main.ts', ['serve', '--config', configPath]);
    children.push(gatewayChild);
    await waitForUrl(`${issuer}/healthz`, { timeoutMs: 20_000 });
    const gatewayPid = workerPid(gatewayChild);

    const trivialToken = await obtainAccessToken(issuer, password, `${issuer}/trivial`);
    const sdkToken = await obtainAccessToken(issuer, password, `${issuer}/mcp`);
    const call = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { text: 'bench' } } });
    const base = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' };

    const rssBefore = await rssMiB(gatewayPid);
    console.log(`autocannon: ${CONNECTIONS} connections, ${DURATION} s per run${TASKSET ? ', load on core 0, gateway and upstreams on core 1' : ''}\n`);
    const trivialDirect = await load('trivial upstream, direct', trivial.url, base, call);
    const trivialBare = await load('trivial, bare node proxy', bareUrl, base, call, workerPid(bareChild));
    const trivialGateway = await load('trivial upstream, gateway', `${issuer}/trivial`, { ...base, authorization: `Bearer ${trivialToken}` }, call, gatewayPid);
    console.log(fmt(trivialDirect));
    console.log(fmt(trivialBare, trivialDirect).replace('gateway CPU', 'proxy CPU'));
    console.log(fmt(trivialGateway, trivialDirect));

    const directSession = await initializeSession(sdkUrl, base);
    const gatewaySession = await initializeSession(`${issuer}/mcp`, { ...base, authorization: `Bearer ${sdkToken}` });
    const sdkDirect = await load('MCP SDK server, direct', sdkUrl, { ...base, ...(directSession ? { 'mcp-session-id': directSession } : {}) }, call);
    const sdkGateway = await load('MCP SDK server, gateway', `${issuer}/mcp`, { ...base, authorization: `Bearer ${sdkToken}`, ...(gatewaySession ? { 'mcp-session-id': gatewaySession } : {}) }, call, gatewayPid);
    console.log(fmt(sdkDirect));
    console.log(fmt(sdkGateway, sdkDirect));

    console.log(`\ngateway RSS: ${rssBefore} MiB after start-up and login, ${await rssMiB(gatewayPid)} MiB after the runs`);
  } finally {
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
