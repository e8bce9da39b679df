/**
 * What recording metrics costs the hot path (docs/operations.md, "Cost"): two gateways in one run,
 * identical but for `metrics.enabled`, in front of the same trivial upstream, loaded in alternating
 * rounds (off, on, off, on, …) so that whatever else the machine does lands on both alike. Each
 * round reads the gateway's CPU time per request from /proc; the report gives every round, the
 * median per variant, the spread (min–max) and the difference of the medians.
 *
 * The metrics-on gateway is scraped once per round, as Prometheus would, so collection is counted.
 *
 * On a busy machine the end-to-end figures carry a spread of several µs, larger than what is being
 * measured; so the run starts with the recording alone, in process: a real ServerResponse marked,
 * labelled and closed, timed against the same steps without the recorder (best of several trials,
 * the figure least disturbed by other processes).
 * Usage: `npm run bench:metrics [-- --duration 5 --rounds 5 --connections 32]`.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { McpRequestRecorder, noteMcpMessage } from '../src/observability/mcp-requests.ts';
import { freePort, waitForUrl } from '../test/support/ports.ts';
import { benchArgs, cpuMicros, pinSelf, spawnNode, startBenchGateway, stopChildren, TASKSET } from './harness.ts';

const args = benchArgs();
const DURATION = Number(args.get('duration') ?? 5);
const ROUNDS = Number(args.get('rounds') ?? 5);
const CONNECTIONS = Number(args.get('connections') ?? 32);

interface Round {
  rps: number;
  cpuPerRequestUs: number;
  errors: number;
}

async function round(url: string, token: string, pid: number): Promise<Round> {
  const body = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { text: 'bench' } } });
  const headers = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': '2025-06-18',
    authorization: `Bearer ${token}`,
  };
  const before = await cpuMicros(pid);
  const result = await autocannon({ url, method: 'POST', headers, body, connections: CONNECTIONS, duration: DURATION, pipelining: 1 });
  const after = await cpuMicros(pid);
  return { rps: result.requests.average, cpuPerRequestUs: (after - before) / result.requests.total, errors: result.errors + result.timeouts + result.non2xx };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

function summary(label: string, rounds: Round[]): string {
  const cpu = rounds.map((r) => r.cpuPerRequestUs);
  const rps = rounds.map((r) => r.rps);
  return `${label.padEnd(12)} CPU µs/req median ${median(cpu).toFixed(1)} (min ${Math.min(...cpu).toFixed(1)}, max ${Math.max(...cpu).toFixed(1)})  req/s median ${median(rps).toFixed(0)}  errors ${rounds.reduce((n, r) => n + r.errors, 0)}`;
}

/**
 * ns per request of what metrics add to the hot path: `begin` on the resource server's dispatch, the
 * parsed message noted, the `close` listener adding the request to its series. The baseline loop does
 * the same listener bookkeeping without the recorder, so the difference is the recorder's own work.
 */
function recordingCostNs(): { withRecorder: number; baseline: number } {
  const req = new IncomingMessage(new Socket());
  req.method = 'POST';
  const res = new ServerResponse(req);
  res.statusCode = 200;
  const message = { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { text: 'bench' } } };
  const server = new McpRequestRecorder().forServer('trivial');
  const noop = () => {};
  const iterations = 200_000;
  const time = (body: () => void): number => {
    let best = Number.POSITIVE_INFINITY;
    for (let trial = 0; trial < 7; trial++) {
      const started = process.hrtime.bigint();
      for (let i = 0; i < iterations; i++) body();
      best = Math.min(best, Number(process.hrtime.bigint() - started) / iterations);
    }
    return best;
  };
  const baseline = time(() => {
    res.on('close', noop);
    res.emit('close');
    res.removeAllListeners('close');
  });
  const withRecorder = time(() => {
    server.begin(req, res);
    noteMcpMessage(req, message);
    res.emit('close');
    res.removeAllListeners('close');
  });
  return { withRecorder, baseline };
}

async function main(): Promise<void> {
  const micro = recordingCostNs();
  console.log(
    `recording alone (in process, best of 7): ${micro.withRecorder.toFixed(0)} ns with the recorder, ${micro.baseline.toFixed(0)} ns listener baseline: ${(micro.withRecorder - micro.baseline).toFixed(0)} ns per request\n`,
  );
  const dir = await mkdtemp(join(tmpdir(), 'mcpgw-bench-metrics-'));
  const children: ChildProcess[] = [];
  try {
    pinSelf(0);
    const upstreamPort = await freePort();
    children.push(spawnNode(1, 'bench/trivial-upstream.ts', ['--port', String(upstreamPort)]));
    const upstream = `http://127.0.0.1:${upstreamPort}/mcp`;
    await waitForUrl(upstream, { timeoutMs: 15_000, ok: () => true });
    const servers = [{ name: 'trivial', path: '/trivial', upstream: { url: upstream } }];
    const opsPort = await freePort();
    const off = await startBenchGateway({ dir, core: 1, servers, name: 'off', extraConfig: { metrics: { enabled: false } } });
    children.push(off.child);
    const on = await startBenchGateway({
      dir,
      core: 1,
      servers,
      name: 'on',
      extraConfig: { metrics: { enabled: true, listen: { host: '127.0.0.1', port: opsPort } } },
    });
    children.push(on.child);
    const offToken = await off.accessToken('/trivial');
    const onToken = await on.accessToken('/trivial');
    console.log(
      `autocannon: ${CONNECTIONS} connections, ${DURATION} s per round, ${ROUNDS} rounds per variant, alternating${TASKSET ? '; load on core 0, gateways and upstream on core 1' : ''}\n`,
    );
    // One warm-up round each, not counted (JIT, connection pools, token cache).
    await round(`${off.issuer}/trivial`, offToken, off.child.pid!);
    await round(`${on.issuer}/trivial`, onToken, on.child.pid!);
    const results = { off: [] as Round[], on: [] as Round[] };
    for (let i = 0; i < ROUNDS; i++) {
      const first = i % 2 === 0 ? 'off' : 'on';
      for (const variant of first === 'off' ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
        const gateway = variant === 'off' ? off : on;
        const result = await round(`${gateway.issuer}/trivial`, variant === 'off' ? offToken : onToken, gateway.child.pid!);
        if (variant === 'on') await (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text();
        results[variant].push(result);
        console.log(`round ${i + 1} metrics ${variant.padEnd(3)}  ${result.cpuPerRequestUs.toFixed(1)} µs/req  ${result.rps.toFixed(0)} req/s`);
      }
    }
    console.log(`\n${summary('metrics off', results.off)}\n${summary('metrics on', results.on)}`);
    const difference = median(results.on.map((r) => r.cpuPerRequestUs)) - median(results.off.map((r) => r.cpuPerRequestUs));
    console.log(`difference of medians (on - off): ${difference.toFixed(1)} µs/req`);
    // Each round's two runs follow each other, so their difference cancels the machine's slower drifts.
    const paired = results.on.map((r, i) => r.cpuPerRequestUs - (results.off[i] as Round).cpuPerRequestUs);
    console.log(
      `paired per round (on - off): median ${median(paired).toFixed(1)} µs/req, min ${Math.min(...paired).toFixed(1)}, max ${Math.max(...paired).toFixed(1)}`,
    );
  } finally {
    await stopChildren(children);
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
