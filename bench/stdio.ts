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
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { STDIO_TEST_SERVER } from '../test/support/stdio-test-server.ts';
import { benchArgs, cpuMicros, startBenchGateway, stopChildren } from './harness.ts';

const args = benchArgs();
const CALLS = Number(args.get('calls') ?? 2000);
const CONCURRENCY = Number(args.get('concurrency') ?? 16);

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

async function measure(label: string, client: Client, gatewayPid?: number): Promise<Figures> {
  for (let i = 0; i < 200; i++) await echo(client, i); // warm-up (JIT, connection pools)
  const cpuBefore = gatewayPid === undefined ? 0 : await cpuMicros(gatewayPid);
  const latencies: number[] = [];
  for (let i = 0; i < CALLS; i++) {
    const start = performance.now();
    await echo(client, i);
    latencies.push(performance.now() - start);
  }
  latencies.sort((a, b) => a - b);
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < CALLS) await echo(client, next++);
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpuAfter = gatewayPid === undefined ? 0 : await cpuMicros(gatewayPid);
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

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mcpgw-bench-stdio-'));
  let gateway: ChildProcess | undefined;
  try {
    const direct = new Client({ name: 'bench-direct', version: '1' });
    await direct.connect(new StdioClientTransport({ command: process.execPath, args: [STDIO_TEST_SERVER], stderr: 'ignore' }));
    const directFigures = await measure('stdio, direct', direct);
    await direct.close();

    // Not pinned: the stdio child inherits the gateway's affinity, and the direct run above is not
    // pinned either, so both runs share the machine the same way.
    const started = await startBenchGateway({
      dir,
      core: undefined,
      logLevel: 'warn',
      servers: [{ name: 'stdio', path: '/stdio', upstream: { stdio: { command: process.execPath, args: [STDIO_TEST_SERVER] } } }],
    });
    gateway = started.child;
    const { issuer } = started;
    const token = await started.accessToken('/stdio');
    const viaGateway = new Client({ name: 'bench-gateway', version: '1' });
    await viaGateway.connect(new StreamableHTTPClientTransport(new URL(`${issuer}/stdio`), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    const gatewayFigures = await measure('stdio, via gateway', viaGateway, gateway.pid);
    await viaGateway.close();

    console.log(`${CALLS} tools/call echo per run (after 200 warm-up calls); SDK clients on both sides\n`);
    console.log(show(directFigures));
    console.log(show(gatewayFigures, directFigures));
  } finally {
    if (gateway) await stopChildren([gateway]);
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
