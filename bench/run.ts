/**
 * Benchmark: an authenticated MCP `tools/call` through the gateway, against the same request sent
 * straight to the upstream, through a bare node:http + undici proxy that handles bodies exactly as the
 * gateway does (bench/bare-proxy.ts, buffered: the floor of this stack), and through nginx when it is
 * installed, all in one run.
 *
 * The load generator is wrk (the Debian package): a C program on core 0 that takes little CPU, where
 * a Node load generator (autocannon) would itself be CPU-bound and blur the comparison. Every proxy
 * and upstream runs on core 1, so what one request costs the proxy is read straight from /proc
 * (utime + stime of the proxy's process over the run, divided by the requests wrk completed), whatever
 * else the machine is doing. Targets are run interleaved (A B C D A B C D …) for `--reps` repetitions
 * and reported as the median with the spread (min–max), so a noisy neighbour hits every target alike.
 *
 * Two upstreams:
 * - `trivial`: a node:http server answering a fixed JSON-RPC result: the proxies' own cost shows.
 * - `sdk`: the demo MCP server (official SDK, Streamable HTTP, stateful session, SSE answers).
 *
 * Usage: `npm run bench [-- --duration 5 --reps 5 --connections 32 --upstreams trivial,sdk
 * --targets direct,bare,streamed,gateway,nginx]` (the first target listed is what ratios are taken to).
 * `--metrics on`: the gateway records and serves Prometheus metrics (docs/operations.md; `npm run
 * bench:metrics` compares both in one run). BENCH_AUDIT=off switches the audit line per call off
 * (harness.ts). BENCH_CPU_PROF=<dir> writes V8 CPU profiles of the Node processes (harness.ts).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForUrl } from '../test/support/ports.ts';
import { benchArgs, cpuMicros, pinSelf, rssKiB, spawnNode, startBenchGateway, stopChildren, TASKSET } from './harness.ts';

const args = benchArgs();
const DURATION = Number(args.get('duration') ?? 5);
const REPS = Number(args.get('reps') ?? 5);
const CONNECTIONS = Number(args.get('connections') ?? 32);
const UPSTREAMS = (args.get('upstreams') ?? 'trivial,sdk').split(',');
/**
 * Which targets run: direct, bare (buffered), streamed (bare, streamed), gateway, nginx, and `before`:
 * the gateway of another checkout given with `--before <dir>` (for example `git worktree add` of the
 * commit before a change), so a change and the code before it are measured in one run.
 */
const BEFORE = args.get('before');
const TARGETS = new Set((args.get('targets') ?? `direct,bare,streamed,gateway,nginx${BEFORE ? ',before' : ''}`).split(','));
const WRK = '/usr/bin/wrk';
const NGINX = '/usr/sbin/nginx';
const PROTOCOL = '2025-06-18';
const CALL = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { text: 'bench' } } });
/** `--metrics on`: the gateway records and serves Prometheus metrics (docs/operations.md); `npm run bench:metrics` compares both in one run. */
const METRICS = args.get('metrics') === 'on';

interface Target {
  key: string;
  label: string;
  url: string;
  headers: Record<string, string>;
  /** The process whose CPU is the proxy's (undefined: direct). */
  proxyPid: number | undefined;
  upstreamPid: number;
  script?: string;
}

interface Sample {
  rps: number;
  requests: number;
  p50Ms: number;
  p99Ms: number;
  bad: number;
  proxyUs: number | undefined;
  upstreamUs: number;
}

/** One wrk run against `target`; CPU of the proxy and the upstream read from /proc around it. */
async function runWrk(target: Target, seconds: number): Promise<Sample> {
  const proxyBefore = target.proxyPid ? await cpuMicros(target.proxyPid) : 0;
  const upstreamBefore = await cpuMicros(target.upstreamPid);
  const wrkArgs = ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', '-s', target.script!, target.url];
  const [command, commandArgs] = TASKSET ? ['taskset', ['-c', '0', WRK, ...wrkArgs]] : [WRK, wrkArgs];
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn(command, commandArgs, { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`wrk exited ${code}: ${text}`))));
  });
  const proxyAfter = target.proxyPid ? await cpuMicros(target.proxyPid) : 0;
  const upstreamAfter = await cpuMicros(target.upstreamPid);
  const requests = Number(output.match(/(\d+) requests in/)?.[1] ?? 0);
  const bad =
    Number(output.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0) +
    [...output.matchAll(/(connect|read|write|timeout) (\d+)/g)].reduce((sum, match) => sum + Number(match[2]), 0);
  return {
    rps: Number(output.match(/Requests\/sec:\s+([\d.]+)/)?.[1] ?? 0),
    requests,
    p50Ms: latencyMs(output, '50%'),
    p99Ms: latencyMs(output, '99%'),
    bad,
    proxyUs: target.proxyPid && requests > 0 ? (proxyAfter - proxyBefore) / requests : undefined,
    upstreamUs: requests > 0 ? (upstreamAfter - upstreamBefore) / requests : 0,
  };
}

function latencyMs(output: string, percentile: string): number {
  const match = output.match(new RegExp(`${percentile}\\s+([\\d.]+)(us|ms|s)`));
  if (!match) return Number.NaN;
  const value = Number(match[1]);
  return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value;
}

/** A wrk script that POSTs the `tools/call` with the target's headers. */
async function writeScript(dir: string, name: string, headers: Record<string, string>): Promise<string> {
  const lines = ['wrk.method = "POST"', `wrk.body = [[${CALL}]]`];
  for (const [key, value] of Object.entries(headers)) lines.push(`wrk.headers["${key}"] = [[${value}]]`);
  const file = join(dir, `${name}.lua`);
  await writeFile(file, `${lines.join('\n')}\n`);
  return file;
}

/** initialize + notifications/initialized through `url`; the session id, when the server keeps sessions. */
async function initializeSession(url: string, headers: Record<string, string>): Promise<string | undefined> {
  const base = { ...headers, 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  const init = await fetch(url, {
    method: 'POST',
    headers: base,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: 'bench', version: '1' } },
    }),
  });
  await init.text();
  if (!init.ok) throw new Error(`initialize through ${url} answered ${init.status}`);
  const session = init.headers.get('mcp-session-id') ?? undefined;
  if (session) {
    const initialized = await fetch(url, {
      method: 'POST',
      headers: { ...base, 'mcp-session-id': session, 'mcp-protocol-version': PROTOCOL },
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    });
    await initialized.text();
  }
  return session;
}

/** nginx as one process (no master), so its CPU is one /proc entry; keep-alive to the upstream. */
async function startNginx(dir: string, upstreams: Record<string, string>): Promise<{ child: ChildProcess; urls: Record<string, string> }> {
  const port = await freePort();
  const blocks = Object.entries(upstreams).map(([path, url]) => {
    const target = new URL(url);
    return `upstream u_${path} { server ${target.host}; keepalive 64; }`;
  });
  const locations = Object.entries(upstreams).map(
    ([path, url]) =>
      `location /${path}/ { proxy_pass http://u_${path}${new URL(url).pathname}; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }`,
  );
  const config = [
    'daemon off;',
    'master_process off;',
    'worker_processes 1;',
    ...(process.getuid?.() === 0 ? ['user root;'] : []),
    `pid ${join(dir, 'nginx.pid')};`,
    `error_log ${join(dir, 'nginx-error.log')} warn;`,
    'events { worker_connections 1024; }',
    'http {',
    '  access_log off;',
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((name) => `  ${name}_temp_path ${join(dir, `nginx-${name}`)};`),
    '  keepalive_requests 1000000;',
    ...blocks.map((block) => `  ${block}`),
    `  server { listen 127.0.0.1:${port}; ${locations.join(' ')} }`,
    '}',
  ].join('\n');
  const configFile = join(dir, 'nginx.conf');
  await writeFile(configFile, config);
  const nginxArgs = ['-p', dir, '-e', join(dir, 'nginx-error.log'), '-c', configFile];
  const [command, commandArgs] = TASKSET ? ['taskset', ['-c', '1', NGINX, ...nginxArgs]] : [NGINX, nginxArgs];
  const child = spawn(command, commandArgs, { stdio: 'ignore' });
  const urls = Object.fromEntries(Object.keys(upstreams).map((path) => [path, `http://127.0.0.1:${port}/${path}/`]));
  await waitForUrl(Object.values(urls)[0]!, { timeoutMs: 10_000, ok: () => true });
  return { child, urls };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function spread(values: number[], digits: number): string {
  const finite = values.filter((value) => Number.isFinite(value));
  if (finite.length === 0) return '–';
  return `${median(finite).toFixed(digits)} (${Math.min(...finite).toFixed(digits)}–${Math.max(...finite).toFixed(digits)})`;
}

/** Runs every target of one upstream interleaved and prints the table. */
async function compare(title: string, all: Target[]): Promise<void> {
  const targets = all.filter((target) => TARGETS.has(target.key));
  // Warm-up (JIT, pools, caches); its requests count in the "served" column, which is what a CPU
  // profile of the whole process saw (bench/profile-summary.ts --requests).
  const warmup = new Map<Target, number>();
  for (const target of targets) warmup.set(target, (await runWrk(target, 2)).requests);
  const samples = new Map<Target, Sample[]>(targets.map((target) => [target, []]));
  // The upstream's RSS after each repetition: a server that grows under load shows it here.
  const upstreamRss: string[] = [`${((await rssKiB(targets[0]!.upstreamPid)) / 1024).toFixed(0)}`];
  for (let rep = 0; rep < REPS; rep++) {
    for (const target of targets) samples.get(target)!.push(await runWrk(target, DURATION));
    upstreamRss.push(((await rssKiB(targets[0]!.upstreamPid)) / 1024).toFixed(0));
  }
  // Ratios are to the first target (direct, unless --targets leaves it out).
  const direct = samples.get(targets[0]!)!;
  const floor = targets.find((target) => target.label.startsWith('bare node proxy, buffered'));
  console.log(`\n${title}`);
  console.log(`upstream RSS after the warm-up, then after each repetition: ${upstreamRss.join(' → ')} MiB`);
  console.log(
    `${'target'.padEnd(30)} ${'req/s'.padEnd(22)} ${'ratio to direct'.padEnd(19)} ${'proxy CPU µs/req'.padEnd(20)} ${'÷ bare buffered'.padEnd(19)} ${'upstream µs/req'.padEnd(18)} p50 ms  p99 ms  bad  served`,
  );
  for (const target of targets) {
    const runs = samples.get(target)!;
    const ratios = runs.map((run, i) => run.rps / direct[i]!.rps);
    const floorRuns = floor ? samples.get(floor)! : undefined;
    const overFloor = runs.map((run, i) => (run.proxyUs !== undefined && floorRuns?.[i]?.proxyUs ? run.proxyUs / floorRuns[i]!.proxyUs! : Number.NaN));
    console.log(
      [
        target.label.padEnd(30),
        spread(
          runs.map((run) => run.rps),
          0,
        ).padEnd(22),
        (target === targets[0] ? '1' : spread(ratios, 2)).padEnd(19),
        spread(
          runs.map((run) => run.proxyUs ?? Number.NaN),
          1,
        ).padEnd(20),
        spread(overFloor, 3).padEnd(19),
        spread(
          runs.map((run) => run.upstreamUs),
          1,
        ).padEnd(18),
        median(runs.map((run) => run.p50Ms))
          .toFixed(2)
          .padEnd(7),
        median(runs.map((run) => run.p99Ms))
          .toFixed(2)
          .padEnd(7),
        String(runs.reduce((sum, run) => sum + run.bad, 0)).padEnd(4),
        String(runs.reduce((sum, run) => sum + run.requests, warmup.get(target) ?? 0)),
      ].join(' '),
    );
  }
}

async function main(): Promise<void> {
  if (!existsSync(WRK)) throw new Error(`wrk not found at ${WRK}: install the Debian package (apt-get install wrk)`);
  const dir = await mkdtemp(join(tmpdir(), 'mcpgw-bench-'));
  const children: ChildProcess[] = [];
  try {
    // This process only orchestrates; wrk runs on core 0 beside it, every server on core 1.
    pinSelf(0);
    const trivialPort = await freePort();
    const trivialChild = spawnNode(1, 'bench/trivial-upstream.ts', ['--port', String(trivialPort)]);
    children.push(trivialChild);
    const trivialUrl = `http://127.0.0.1:${trivialPort}/mcp`;
    const sdkPort = await freePort();
    const sdkChild = spawnNode(1, 'src/demo/server.ts', ['--port', String(sdkPort)]);
    children.push(sdkChild);
    const sdkUrl = `http://127.0.0.1:${sdkPort}/mcp`;
    await waitForUrl(trivialUrl, { timeoutMs: 15_000, ok: () => true });
    await waitForUrl(sdkUrl, { timeoutMs: 15_000, ok: () => true });

    const bare = async (upstream: string, mode: string): Promise<{ child: ChildProcess; url: string }> => {
      const port = await freePort();
      const child = spawnNode(1, 'bench/bare-proxy.ts', ['--port', String(port), '--upstream', upstream, '--mode', mode]);
      children.push(child);
      const url = `http://127.0.0.1:${port}/mcp`;
      await waitForUrl(url, { timeoutMs: 15_000, ok: () => true });
      return { child, url };
    };
    const bareTrivial = await bare(trivialUrl, 'buffered');
    const bareTrivialStreamed = await bare(trivialUrl, 'streamed');
    const bareSdk = await bare(sdkUrl, 'buffered');
    const nginx = existsSync(NGINX) ? await startNginx(dir, { trivial: trivialUrl, sdk: sdkUrl }) : undefined;
    if (nginx) children.push(nginx.child);

    const identityHeaders = { subject: 'x-user-id', email: 'x-user-email' };
    const gateway = await startBenchGateway({
      dir,
      core: 1,
      servers: [
        { name: 'trivial', path: '/trivial', upstream: { url: trivialUrl }, identityHeaders },
        { name: 'sdk', path: '/mcp', upstream: { url: sdkUrl }, identityHeaders },
      ],
      extraConfig: { metrics: { enabled: METRICS, listen: { host: '127.0.0.1', port: 0 } } },
    });
    children.push(gateway.child);
    const gatewayPid = gateway.child.pid!;
    const before = BEFORE
      ? await startBenchGateway({
          dir,
          core: 1,
          script: join(BEFORE, 'src/cli/main.ts'),
          // Only with `--metrics on`: a tree from before the metrics block would refuse the key.
          ...(METRICS ? { extraConfig: { metrics: { enabled: true, listen: { host: '127.0.0.1', port: 0 } } } } : {}),
          servers: [
            { name: 'trivial', path: '/trivial', upstream: { url: trivialUrl }, identityHeaders },
            { name: 'sdk', path: '/mcp', upstream: { url: sdkUrl }, identityHeaders },
          ],
        })
      : undefined;
    if (before) children.push(before.child);
    const base = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': PROTOCOL };
    const rssBefore = await rssKiB(gatewayPid);
    const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}`;
    console.log(
      `wrk: 1 thread, ${CONNECTIONS} connections, ${DURATION} s per run, ${REPS} interleaved repetitions; ${TASKSET ? 'wrk on core 0, every proxy and upstream on core 1' : 'taskset missing: NOT pinned'}; ${machine}; node ${process.version}; metrics ${METRICS ? 'on' : 'off'}; audit ${process.env.BENCH_AUDIT === 'off' ? 'off' : 'on'}`,
    );
    console.log('figures: median (min–max) over the repetitions; proxy CPU from /proc utime+stime ÷ requests completed');

    const make = async (name: string, label: string, url: string, headers: Record<string, string>, proxyPid: number | undefined, upstreamPid: number) => {
      const key = name.slice(2);
      const target: Target = { key: key === 'bare-streamed' ? 'streamed' : key, label, url, headers, proxyPid, upstreamPid };
      target.script = await writeScript(dir, name, headers);
      return target;
    };
    if (UPSTREAMS.includes('trivial')) {
      const token = await gateway.accessToken('/trivial');
      const upstreamPid = trivialChild.pid!;
      const targets = [
        await make('t-direct', 'direct', trivialUrl, base, undefined, upstreamPid),
        await make('t-bare', 'bare node proxy, buffered', bareTrivial.url, base, bareTrivial.child.pid!, upstreamPid),
        await make('t-bare-streamed', 'bare node proxy, streamed', bareTrivialStreamed.url, base, bareTrivialStreamed.child.pid!, upstreamPid),
        await make('t-gateway', 'gateway', `${gateway.issuer}/trivial`, { ...base, authorization: `Bearer ${token}` }, gatewayPid, upstreamPid),
      ];
      if (nginx) targets.push(await make('t-nginx', 'nginx proxy_pass (no auth)', nginx.urls.trivial!, base, nginx.child.pid!, upstreamPid));
      if (before) {
        const beforeToken = await before.accessToken('/trivial');
        targets.push(
          await make(
            't-before',
            'gateway, --before tree',
            `${before.issuer}/trivial`,
            { ...base, authorization: `Bearer ${beforeToken}` },
            before.child.pid!,
            upstreamPid,
          ),
        );
      }
      await compare('trivial upstream (fixed JSON-RPC answer)', targets);
    }
    if (UPSTREAMS.includes('sdk')) {
      const token = await gateway.accessToken('/mcp');
      const upstreamPid = sdkChild.pid!;
      const withSession = async (url: string, headers: Record<string, string>) => {
        const session = await initializeSession(url, headers);
        return session ? { ...headers, 'mcp-session-id': session } : headers;
      };
      const gatewayHeaders = { ...base, authorization: `Bearer ${token}` };
      const targets = [
        await make('s-direct', 'direct', sdkUrl, await withSession(sdkUrl, base), undefined, upstreamPid),
        await make('s-bare', 'bare node proxy, buffered', bareSdk.url, await withSession(bareSdk.url, base), bareSdk.child.pid!, upstreamPid),
        await make('s-gateway', 'gateway', `${gateway.issuer}/mcp`, await withSession(`${gateway.issuer}/mcp`, gatewayHeaders), gatewayPid, upstreamPid),
      ];
      if (nginx)
        targets.push(
          await make('s-nginx', 'nginx proxy_pass (no auth)', nginx.urls.sdk!, await withSession(nginx.urls.sdk!, base), nginx.child.pid!, upstreamPid),
        );
      if (before) {
        const beforeHeaders = { ...base, authorization: `Bearer ${await before.accessToken('/mcp')}` };
        targets.push(
          await make(
            's-before',
            'gateway, --before tree',
            `${before.issuer}/mcp`,
            await withSession(`${before.issuer}/mcp`, beforeHeaders),
            before.child.pid!,
            upstreamPid,
          ),
        );
      }
      await compare('MCP SDK server (demo server, stateful session, SSE answers)', targets);
    }
    const mib = (kib: number): string => (kib / 1024).toFixed(0);
    console.log(`\ngateway RSS: ${mib(rssBefore)} MiB after start-up and login, ${mib(await rssKiB(gatewayPid))} MiB after the runs`);
  } finally {
    await stopChildren(children);
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
