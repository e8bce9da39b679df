/**
 * Benchmark: memory per idle SSE stream through the gateway. Opens N Streamable HTTP sessions on the
 * demo MCP server (official SDK) through the gateway, authenticated, then the standalone GET SSE stream
 * of each, and holds them open. Reports the gateway's RSS before and after, and per stream.
 *
 * Layout as bench/run.ts: this process (the clients) on core 0, gateway and upstream on core 1, when
 * `taskset` exists. With `--cycles N` the streams are closed and opened again N times, and the RSS is
 * read `--after` seconds after each close (does memory come back?).
 * Usage: `npx node bench/sse-streams.ts [--streams 1000] [--settle 3] [--cycles 3 --after 60]`.
 * The gateway's environment is this process's: try MALLOC_ARENA_MAX=2 there.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { type ClientRequest, type IncomingMessage, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForUrl } from '../test/support/ports.ts';
import { benchArgs, Inspector, pinSelf, rssKiB, spawnNode, startBenchGateway, stopChildren, TASKSET } from './harness.ts';

const args = benchArgs();
const STREAMS = Number(args.get('streams') ?? 1000);
const SETTLE_SECONDS = Number(args.get('settle') ?? 3);
/** Open-and-close cycles; after each close the RSS is read again after `--after` seconds. */
const CYCLES = Number(args.get('cycles') ?? 1);
const AFTER_SECONDS = Number(args.get('after') ?? 60);
const PROTOCOL = '2025-06-18';

/** initialize + notifications/initialized; returns the session id. */
async function openSession(url: string, authorization: string): Promise<string> {
  const headers = { authorization, 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  const init = await fetch(url, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: 'sse-bench', version: '1' } },
    }),
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
    const req = request(
      url,
      {
        method: 'GET',
        agent: false,
        headers: { authorization, accept: 'text/event-stream', 'mcp-session-id': session, 'mcp-protocol-version': PROTOCOL },
      },
      (res) => {
        if (res.statusCode !== 200) {
          reject(new Error(`GET stream answered ${res.statusCode}`));
          res.resume();
          return;
        }
        res.on('data', () => undefined);
        resolve({ req, res });
      },
    );
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
    pinSelf(0);
    const upstreamPort = await freePort();
    const upstream = spawnNode(1, 'src/demo/server.ts', ['--port', String(upstreamPort), '--max-sessions', String(STREAMS + 100)]);
    children.push(upstream);
    const upstreamUrl = `http://127.0.0.1:${upstreamPort}/mcp`;
    await waitForUrl(upstreamUrl, { timeoutMs: 15_000, ok: () => true });

    const inspectPort = await freePort();
    const gatewayProcess = await startBenchGateway({
      inspectPort,
      dir,
      core: 1,
      logLevel: 'warn',
      servers: [{ name: 'sdk', path: '/mcp', upstream: { url: upstreamUrl }, identityHeaders: { subject: 'x-user-id' } }],
    });
    const gateway = gatewayProcess.child;
    children.push(gateway);
    const { issuer } = gatewayProcess;

    const url = `${issuer}/mcp`;
    const authorization = `Bearer ${await gatewayProcess.accessToken('/mcp')}`;
    const mib = (kib: number): string => (kib / 1024).toFixed(1);
    const inspector = await Inspector.connect(inspectPort);
    const m = (bytes: number): string => (bytes / 1048576).toFixed(1);
    const usage = (u: NodeJS.MemoryUsage): string =>
      `V8 heap ${m(u.heapUsed)} used of ${m(u.heapTotal)}, external ${m(u.external)} (array buffers ${m(u.arrayBuffers)}) MiB`;
    /** As found, then after a forced full collection: garbage awaiting collection is the difference. */
    const heap = async (): Promise<string> => {
      const found = await inspector.memoryUsage();
      await inspector.collectGarbage();
      return `${usage(found)}; after a forced GC: ${usage(await inspector.memoryUsage())}, RSS ${mib(await rssKiB(gateway.pid!))} MiB`;
    };
    let snapshotBefore: Map<string, { size: number; count: number }> | undefined;
    const baseline = await rssKiB(gateway.pid!);
    console.log(
      `${STREAMS} idle GET SSE streams through the gateway (demo MCP server upstream)${TASKSET ? '; clients on core 0, gateway and upstream on core 1' : ''}`,
    );
    console.log(`gateway RSS after start-up and login: ${mib(baseline)} MiB; ${await heap()}`);
    for (let cycle = 1; cycle <= CYCLES; cycle++) {
      const sessions = await inBatches(STREAMS, 50, () => openSession(url, authorization));
      await new Promise((resolve) => setTimeout(resolve, SETTLE_SECONDS * 1000));
      const gatewayBefore = await rssKiB(gateway.pid!);
      const upstreamBefore = await rssKiB(upstream.pid!);
      if (args.has('snapshot') && cycle === 1) {
        await inspector.collectGarbage();
        snapshotBefore = await inspector.heapByConstructor();
      }

      const started = Date.now();
      const opened = await inBatches(STREAMS, 100, (index) => openStream(url, authorization, sessions[index]!));
      streams.push(...opened);
      const openMs = Date.now() - started;
      await new Promise((resolve) => setTimeout(resolve, SETTLE_SECONDS * 1000));
      const gatewayAfter = await rssKiB(gateway.pid!);
      const upstreamAfter = await rssKiB(upstream.pid!);

      // Still serving while the streams are open: one tools/call.
      const probe = await fetch(url, {
        method: 'POST',
        headers: {
          authorization,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-session-id': sessions[0]!,
          'mcp-protocol-version': PROTOCOL,
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { text: 'alive' } } }),
      });
      const probeOk = probe.status === 200 && (await probe.text()).includes('alive');
      if (!probeOk) process.exitCode = 1;
      console.log(`cycle ${cycle}: opened in ${openMs} ms; a tools/call while they are open: ${probeOk ? 'ok' : 'FAILED'}`);
      console.log(
        `  gateway RSS: ${mib(gatewayBefore)} MiB with the sessions, ${mib(gatewayAfter)} MiB with the streams open: ${((gatewayAfter - gatewayBefore) / STREAMS).toFixed(1)} KiB per stream, ${mib(gatewayAfter - baseline)} MiB above the baseline`,
      );
      console.log(`  streams open: ${await heap()}`);
      if (snapshotBefore !== undefined && cycle === 1) {
        // What one open stream holds in the V8 heap, by constructor (heap snapshots with the
        // sessions open and with the streams open too, after a full collection each).
        const after = await inspector.heapByConstructor();
        const rows = [...after]
          .map(([name, entry]) => {
            const before = snapshotBefore!.get(name) ?? { size: 0, count: 0 };
            return { name, bytes: (entry.size - before.size) / STREAMS, count: (entry.count - before.count) / STREAMS };
          })
          .sort((a, b) => b.bytes - a.bytes);
        const total = rows.reduce((sum, row) => sum + row.bytes, 0);
        console.log(`  V8 heap per open stream: ${(total / 1024).toFixed(1)} KiB; largest by constructor (bytes and objects per stream):`);
        for (const row of rows.slice(0, Number(args.get('snapshot') || 25)))
          console.log(`    ${row.bytes.toFixed(0).padStart(6)} B ${row.count.toFixed(2).padStart(6)}  ${row.name}`);
      }
      console.log(
        `  upstream RSS: ${mib(upstreamBefore)} MiB before, ${mib(upstreamAfter)} MiB after (${((upstreamAfter - upstreamBefore) / STREAMS).toFixed(1)} KiB per stream, for comparison)`,
      );
      if (CYCLES > 1 || args.has('after')) {
        for (const stream of streams.splice(0)) stream.req.destroy();
        // Sessions ended too, as a client does when it leaves (MCP Transports, DELETE).
        await inBatches(STREAMS, 100, (index) =>
          fetch(url, { method: 'DELETE', headers: { authorization, 'mcp-session-id': sessions[index]!, 'mcp-protocol-version': PROTOCOL } }).then((r) =>
            r.arrayBuffer(),
          ),
        );
        await new Promise((resolve) => setTimeout(resolve, AFTER_SECONDS * 1000));
        const rest = await rssKiB(gateway.pid!);
        console.log(
          `  ${AFTER_SECONDS} s after they closed: gateway RSS ${mib(rest)} MiB (${((100 * (rest - baseline)) / baseline).toFixed(0)} % above the baseline), upstream ${mib(await rssKiB(upstream.pid!))} MiB; ${await heap()}`,
        );
      }
    }
    inspector.close();
  } finally {
    for (const stream of streams) stream.req.destroy();
    await stopChildren(children);
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
