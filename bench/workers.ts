/**
 * Benchmark: how the gateway's throughput scales with `workers: N` (src/cli/workers.ts) on this host.
 * Gateways with each worker count run side by side in front of the trivial upstream; wrk loads them in
 * turn, interleaved (1 2 1 2 …), with nothing pinned: the workers need every core there is. Reports
 * req/s and the CPU per request of the whole gateway (primary and workers, from /proc).
 *
 * On a 2-core host the load generator and the upstream share the cores with the workers, so two
 * workers cannot double anything; docs/performance.md ("Workers") says what limits more.
 * Usage: `node bench/workers.ts [--workers 1,2 --duration 5 --reps 5 --connections 64]`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForUrl } from '../test/support/ports.ts';
import { type BenchGateway, benchArgs, spawnNode, startBenchGateway, stopChildren, treeCpuMicros } from './harness.ts';

const args = benchArgs();
const COUNTS = (args.get('workers') ?? '1,2').split(',').map(Number);
const DURATION = Number(args.get('duration') ?? 5);
const REPS = Number(args.get('reps') ?? 5);
const CONNECTIONS = Number(args.get('connections') ?? 64);
const CALL = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { text: 'bench' } } });

async function wrk(script: string, url: string, seconds: number): Promise<{ rps: number; requests: number; bad: number }> {
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn('wrk', ['-t2', `-c${CONNECTIONS}`, `-d${seconds}s`, '-s', script, url], { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`wrk exited ${code}`))));
  });
  return {
    rps: Number(output.match(/Requests\/sec:\s+([\d.]+)/)?.[1] ?? 0),
    requests: Number(output.match(/(\d+) requests in/)?.[1] ?? 0),
    bad: Number(output.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0),
  };
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[values.length >> 1]!;

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mcpgw-workers-bench-'));
  const children: ChildProcess[] = [];
  try {
    const upstreamPort = await freePort();
    children.push(spawnNode(undefined, 'bench/trivial-upstream.ts', ['--port', String(upstreamPort)]));
    const upstreamUrl = `http://127.0.0.1:${upstreamPort}/mcp`;
    await waitForUrl(upstreamUrl, { timeoutMs: 15_000, ok: () => true });
    const gateways: Array<{ workers: number; gateway: BenchGateway; script: string }> = [];
    for (const workers of COUNTS) {
      const gateway = await startBenchGateway({
        dir,
        core: undefined,
        workers,
        servers: [{ name: 'trivial', path: '/trivial', upstream: { url: upstreamUrl }, identityHeaders: { subject: 'x-user-id' } }],
      });
      children.push(gateway.child);
      const token = await gateway.accessToken('/trivial');
      const script = join(dir, `w${workers}.lua`);
      await writeFile(
        script,
        `wrk.method = "POST"\nwrk.body = [[${CALL}]]\nwrk.headers["content-type"] = "application/json"\nwrk.headers["accept"] = "application/json, text/event-stream"\nwrk.headers["authorization"] = "Bearer ${token}"\n`,
      );
      gateways.push({ workers, gateway, script });
    }
    console.log(
      `wrk: 2 threads, ${CONNECTIONS} connections, ${DURATION} s per run, ${REPS} interleaved repetitions, nothing pinned; ${cpus().length} × ${cpus()[0]?.model}`,
    );
    const samples = new Map<number, Array<{ rps: number; cpuUs: number; bad: number }>>(COUNTS.map((count) => [count, []]));
    for (const { gateway, script } of gateways) await wrk(script, `${gateway.issuer}/trivial`, 2);
    for (let rep = 0; rep < REPS; rep++) {
      for (const { workers, gateway, script } of gateways) {
        const before = await treeCpuMicros(gateway.child.pid!);
        const run = await wrk(script, `${gateway.issuer}/trivial`, DURATION);
        const after = await treeCpuMicros(gateway.child.pid!);
        samples.get(workers)!.push({ rps: run.rps, cpuUs: (after - before) / run.requests, bad: run.bad });
      }
    }
    const base = median(samples.get(COUNTS[0]!)!.map((s) => s.rps));
    for (const count of COUNTS) {
      const runs = samples.get(count)!;
      const rps = runs.map((s) => s.rps);
      console.log(
        `workers ${count}: ${median(rps).toFixed(0)} req/s (${Math.min(...rps).toFixed(0)}–${Math.max(...rps).toFixed(0)}), ×${(median(rps) / base).toFixed(2)}; gateway CPU ${median(runs.map((s) => s.cpuUs)).toFixed(1)} µs/req; non-2xx ${runs.reduce((a, s) => a + s.bad, 0)}`,
      );
    }
  } finally {
    await stopChildren(children);
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
