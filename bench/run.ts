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
 * Layout (ARCHITECTURE.md, "Performance"): load generator pinned to core 0, gateway and upstream to core 1, when `taskset`
 * exists. Usage: `npm run bench [-- --duration 10 --connections 32]`.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { freePort, waitForUrl } from '../test/support/ports.ts';
import { benchArgs, cpuMicros, pinSelf, rssKiB, spawnNode, startBenchGateway, stopChildren, TASKSET } from './harness.ts';

const args = benchArgs();
const DURATION = Number(args.get('duration') ?? 10);
const CONNECTIONS = Number(args.get('connections') ?? 32);
/** `--metrics on`: the gateway records and serves Prometheus metrics (docs/operations.md); `npm run bench:metrics` compares both in one run. */
const METRICS = args.get('metrics') === 'on';

async function rssMiB(pid: number): Promise<number> {
  return Math.round((await rssKiB(pid)) / 1024);
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

async function initializeSession(url: string, headers: Record<string, string>): Promise<string | undefined> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'bench', version: '1' } },
    }),
  });
  await response.text();
  const session = response.headers.get('mcp-session-id') ?? undefined;
  if (session) {
    await fetch(url, {
      method: 'POST',
      headers: {
        ...headers,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-session-id': session,
        'mcp-protocol-version': '2025-06-18',
      },
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    }).then((r) => r.text());
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
    pinSelf(0);
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

    const gateway = await startBenchGateway({
      dir,
      core: 1,
      servers: [
        { name: 'trivial', path: '/trivial', upstream: { url: trivial.url } },
        { name: 'sdk', path: '/mcp', upstream: { url: sdkUrl }, identityHeaders: { email: 'x-user-email' } },
      ],
      extraConfig: { metrics: { enabled: METRICS, listen: { host: '127.0.0.1', port: 0 } } },
    });
    children.push(gateway.child);
    const { issuer } = gateway;
    const gatewayPid = gateway.child.pid!;
    const trivialToken = await gateway.accessToken('/trivial');
    const sdkToken = await gateway.accessToken('/mcp');
    const call = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { text: 'bench' } } });
    const base = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' };

    const rssBefore = await rssMiB(gatewayPid);
    console.log(
      `autocannon: ${CONNECTIONS} connections, ${DURATION} s per run${TASKSET ? ', load on core 0, gateway and upstreams on core 1' : ''}; metrics ${METRICS ? 'on' : 'off'}\n`,
    );
    const trivialDirect = await load('trivial upstream, direct', trivial.url, base, call);
    const trivialBare = await load('trivial, bare node proxy', bareUrl, base, call, bareChild.pid!);
    const trivialGateway = await load('trivial upstream, gateway', `${issuer}/trivial`, { ...base, authorization: `Bearer ${trivialToken}` }, call, gatewayPid);
    console.log(fmt(trivialDirect));
    console.log(fmt(trivialBare, trivialDirect).replace('gateway CPU', 'proxy CPU'));
    console.log(fmt(trivialGateway, trivialDirect));

    const directSession = await initializeSession(sdkUrl, base);
    const gatewaySession = await initializeSession(`${issuer}/mcp`, { ...base, authorization: `Bearer ${sdkToken}` });
    const sdkDirect = await load('MCP SDK server, direct', sdkUrl, { ...base, ...(directSession ? { 'mcp-session-id': directSession } : {}) }, call);
    const sdkGateway = await load(
      'MCP SDK server, gateway',
      `${issuer}/mcp`,
      { ...base, authorization: `Bearer ${sdkToken}`, ...(gatewaySession ? { 'mcp-session-id': gatewaySession } : {}) },
      call,
      gatewayPid,
    );
    console.log(fmt(sdkDirect));
    console.log(fmt(sdkGateway, sdkDirect));

    console.log(`\ngateway RSS: ${rssBefore} MiB after start-up and login, ${await rssMiB(gatewayPid)} MiB after the runs`);
  } finally {
    await stopChildren(children);
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
