/**
 * Benchmark: `tools/call echo` on a stdio MCP server, through the gateway (Streamable HTTP → gateway
 * → stdio bridge → process) versus the same server driven over stdio directly (the SDK's
 * StdioClientTransport). Official SDK clients on both sides; prints per-call latency (sequential
 * calls) and throughput (concurrent calls over one session), and the ratios.
 *
 * The gateway runs as its own process (`serve`) with a local IdP user, the stdio server is
 * test/support/stdio-test-server.ts in shared mode.
 * Usage: `npx node bench/stdio.ts [--calls 2000] [--concurrency 16]`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { hashPassword } from '../src/upstream/passwords.ts';
import { Browser } from '../test/support/browser.ts';
import { freePort, waitForUrl } from '../test/support/ports.ts';
import { STDIO_TEST_SERVER } from '../test/support/stdio-test-server.ts';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '');
const CALLS = Number(args.get('calls') ?? 2000);
const CONCURRENCY = Number(args.get('concurrency') ?? 16);
const repoRoot = new URL('..', import.meta.url).pathname;

interface Figures {
  label: string;
  /** CPU time (user + system) of the gateway process per call, both runs together, in µs. */
  gatewayCpuUs?: number;
  p50: number;
  p99: number;
  mean: number;
  rps: number;
}

async function echo(client: Client, index: number): Promise<void> {
  const result = await client.callTool({ name: 'echo', arguments: { text: `bench ${index}` } });
  const text = (result.content as Array<{ text?: string }>)[0]?.text;
  if (text !== `bench ${index}`) throw new Error(`unexpected echo: ${text}`);
}

/** utime + stime of a process in microseconds (/proc/<pid>/stat, clock ticks of 10 ms). */
async function cpuMicros(pid: number | undefined): Promise<number> {
  if (pid === undefined) return 0;
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) * 10_000;
}

async function measure(label: string, client: Client, gatewayPid?: number): Promise<Figures> {
  for (let i = 0; i < 200; i++) await echo(client, i); // warm-up (JIT, connection pools)
  const cpuBefore = await cpuMicros(gatewayPid);
  const latencies: number[] = [];
  for (let i = 0; i < CALLS; i++) {
    const start = performance.now();
    await echo(client, i);
    latencies.push(performance.now() - start);
  }
  latencies.sort((a, b) => a - b);
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < CALLS) await echo(client, next++);
  }));
  const seconds = (performance.now() - started) / 1000;
  const cpuAfter = await cpuMicros(gatewayPid);
  return {
    label,
    gatewayCpuUs: gatewayPid === undefined ? undefined : (cpuAfter - cpuBefore) / (2 * CALLS),
    p50: latencies[Math.floor(latencies.length * 0.5)]!,
    p99: latencies[Math.floor(latencies.length * 0.99)]!,
    mean: latencies.reduce((sum, value) => sum + value, 0) / latencies.length,
    rps: CALLS / seconds,
  };
}

function show(figures: Figures, base?: Figures): string {
  const ratio = base ? `  latency x${(figures.mean / base.mean).toFixed(2)}, throughput x${(figures.rps / base.rps).toFixed(2)}` : '';
  const cpu = figures.gatewayCpuUs === undefined ? '' : `; gateway CPU ${figures.gatewayCpuUs.toFixed(0)} µs/call`;
  return `${figures.label.padEnd(24)} sequential: mean ${figures.mean.toFixed(3)} ms p50 ${figures.p50.toFixed(3)} ms p99 ${figures.p99.toFixed(3)} ms | ${CONCURRENCY} concurrent: ${figures.rps.toFixed(0)} calls/s${ratio}${cpu}`;
}

/** Register, consent, local sign-in, code, token: the access token for `resource`. */
async function login(issuer: string, password: string, resource: string): Promise<string> {
  const redirectUri = 'http://127.0.0.1:9/callback';
  const registration = await fetch(`${issuer}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client_name: 'bench-stdio', redirect_uris: [redirectUri], token_endpoint_auth_method: 'none' }) });
  const { client_id: clientId } = (await registration.json()) as { client_id: string };
  const verifier = randomBytes(32).toString('base64url');
  const authorize = new URL('/authorize', issuer);
  const query = { response_type: 'code', client_id: clientId, redirect_uri: redirectUri, code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256', state: 'bench', resource };
  for (const [key, value] of Object.entries(query)) authorize.searchParams.set(key, value);
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

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mcpgw-bench-stdio-'));
  let gateway: ChildProcess | undefined;
  try {
    const direct = new Client({ name: 'bench-direct', version: '1' });
    await direct.connect(new StdioClientTransport({ command: process.execPath, args: [STDIO_TEST_SERVER], stderr: 'ignore' }));
    const directFigures = await measure('stdio, direct', direct);
    await direct.close();

    const port = await freePort();
    const issuer = `http://localhost:${port}`;
    const password = randomBytes(12).toString('base64url');
    const config = {
      publicUrl: issuer,
      listen: { host: '127.0.0.1', port },
      dataDir: join(dir, 'data'),
      log: { level: 'warn' },
      identityProviders: [{ type: 'local', users: [{ username: 'bench', passwordHash: await hashPassword(password), email: 'bench@example.com' }] }],
      servers: [{ name: 'stdio', path: '/stdio', upstream: { stdio: { command: process.execPath, args: [STDIO_TEST_SERVER] } } }],
    };
    const configPath = join(dir, 'gateway.json');
    await writeFile(configPath, JSON.stringify(config));
    // BENCH_CPU_PROF=<dir> writes a V8 CPU profile of the gateway there (open it in Chrome DevTools).
    const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : [];
    gateway = spawn(process.execPath, [...profile, 'src/cli/main.ts', 'serve', '--config', configPath], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'inherit'] });
    await waitForUrl(`${issuer}/healthz`, { timeoutMs: 20_000 });
    const token = await login(issuer, password, `${issuer}/stdio`);
    const viaGateway = new Client({ name: 'bench-gateway', version: '1' });
    await viaGateway.connect(new StreamableHTTPClientTransport(new URL(`${issuer}/stdio`), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    const gatewayFigures = await measure('stdio, via gateway', viaGateway, gateway.pid);
    await viaGateway.close();

    console.log(`${CALLS} tools/call echo per run (after 200 warm-up calls); SDK clients on both sides\n`);
    console.log(show(directFigures));
    console.log(show(gatewayFigures, directFigures));
  } finally {
    if (gateway && gateway.exitCode === null) {
      await new Promise<void>((resolve) => {
        gateway!.once('exit', () => resolve());
        gateway!.kill('SIGTERM');
      });
    }
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
