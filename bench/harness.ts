/**
 * What every benchmark here needs: command-line flags, child processes pinned to a core (load
 * generator on core 0, gateway and upstreams on core 1, when `taskset` exists), their CPU time and
 * memory from /proc, the gateway started as its own `serve` process with a local bench user, and an
 * access token obtained through the full login a person does (register, consent, sign-in, token).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hashPassword } from '../src/idp/passwords.ts';
import { loginWithLocalAccount } from '../test/support/local-login.ts';
import { freePort, waitForUrl } from '../test/support/ports.ts';

/** `--name value` pairs from the command line. */
export function benchArgs(): Map<string, string> {
  const args = new Map<string, string>();
  for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '');
  return args;
}

export const TASKSET = existsSync('/usr/bin/taskset');
const repoRoot = new URL('..', import.meta.url).pathname;

/** Moves this process (the load generator) to `core`. */
export function pinSelf(core: number): void {
  if (TASKSET) spawnSync('taskset', ['-cp', String(core), String(process.pid)], { stdio: 'ignore' });
}

/**
 * Starts `node <script>` from the repository root, pinned to `core` (undefined: not pinned). Its stdout is shown only with
 * BENCH_VERBOSE=1 (per-request output would distort the figures); BENCH_CPU_PROF=<dir> writes V8 CPU
 * profiles there (open them in Chrome DevTools). Under taskset, exec replaces taskset, so the child's
 * pid is node's.
 */
export function spawnNode(core: number | undefined, script: string, scriptArgs: string[], extraNodeArgs: string[] = []): ChildProcess {
  const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : [];
  // `--perf-basic-prof` and the like: on a shared core `perf record` of the gateway's pid sees what
  // V8's sampling profiler misattributes (bench/auth-path.ts).
  const extra = process.env.BENCH_NODE_FLAGS?.split(' ').filter(Boolean) ?? [];
  const nodeArgs = [...profile, ...extraNodeArgs, ...extra, script, ...scriptArgs];
  const [command, commandArgs] =
    TASKSET && core !== undefined ? ['taskset', ['-c', String(core), process.execPath, ...nodeArgs]] : [process.execPath, nodeArgs];
  const verbose = process.env.BENCH_VERBOSE === '1';
  return spawn(command, commandArgs, { cwd: repoRoot, env: process.env, stdio: ['ignore', verbose ? 'inherit' : 'ignore', 'inherit'] });
}

/** utime + stime of a process in microseconds (/proc/<pid>/stat, clock ticks of 10 ms). */
export async function cpuMicros(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

export async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(status.match(/VmRSS:\s+(\d+) kB/)?.[1]);
}

/** CPU of a process and its children (cluster workers), from /proc. */
export async function treeCpuMicros(pid: number): Promise<number> {
  let total = await cpuMicros(pid);
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    if (stat && Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) total += await cpuMicros(Number(entry)).catch(() => 0);
  }
  return total;
}

/**
 * A session with the inspector of a process started with `--inspect` on `port` (Chrome DevTools
 * protocol over the global WebSocket): its `process.memoryUsage()`, a forced full collection, and a
 * heap snapshot summed by constructor, so memory per stream can be told apart into JS objects (and
 * which), Buffers, garbage awaiting collection, and what the allocator keeps.
 */
export class Inspector {
  readonly #socket: WebSocket;
  #next = 1;
  readonly #pending = new Map<number, (result: unknown) => void>();
  #chunks: string[] = [];

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.onmessage = (event) => {
      const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown; method?: string; params?: { chunk: string } };
      if (message.method === 'HeapProfiler.addHeapSnapshotChunk') this.#chunks.push(message.params!.chunk);
      else if (message.id !== undefined) this.#pending.get(message.id)?.(message.result);
    };
  }

  static async connect(port: number): Promise<Inspector> {
    const [target] = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as Array<{ webSocketDebuggerUrl: string }>;
    const socket = new WebSocket(target!.webSocketDebuggerUrl);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = reject;
    });
    return new Inspector(socket);
  }

  #call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.#next++;
    return new Promise((resolve) => {
      this.#pending.set(id, resolve);
      this.#socket.send(JSON.stringify({ id, method, params }));
    });
  }

  async memoryUsage(): Promise<NodeJS.MemoryUsage> {
    const reply = (await this.#call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })) as {
      result: { value: string };
    };
    return JSON.parse(reply.result.value) as NodeJS.MemoryUsage;
  }

  async collectGarbage(): Promise<void> {
    await this.#call('HeapProfiler.collectGarbage');
  }

  /** Self size and count of live objects by constructor name (a heap snapshot, summed). */
  async heapByConstructor(): Promise<Map<string, { size: number; count: number }>> {
    this.#chunks = [];
    await this.#call('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
    const snapshot = JSON.parse(this.#chunks.join('')) as {
      snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
      nodes: number[];
      strings: string[];
    };
    this.#chunks = [];
    const fields = snapshot.snapshot.meta.node_fields;
    const width = fields.length;
    const typeAt = fields.indexOf('type');
    const nameAt = fields.indexOf('name');
    const sizeAt = fields.indexOf('self_size');
    const types = snapshot.snapshot.meta.node_types[0];
    const out = new Map<string, { size: number; count: number }>();
    for (let i = 0; i < snapshot.nodes.length; i += width) {
      const type = types[snapshot.nodes[i + typeAt]!]!;
      const name = type === 'object' || type === 'closure' ? snapshot.strings[snapshot.nodes[i + nameAt]!]! : `(${type})`;
      const key = type === 'closure' ? `${name}()` : name;
      const entry = out.get(key) ?? { size: 0, count: 0 };
      entry.size += snapshot.nodes[i + sizeAt]!;
      entry.count++;
      out.set(key, entry);
    }
    return out;
  }

  close(): void {
    this.#socket.close();
  }
}

/** Sends SIGTERM to every child still running and waits for them to exit. */
export async function stopChildren(children: readonly ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
        }),
    ),
  );
}

export interface BenchGateway {
  issuer: string;
  child: ChildProcess;
  /** An access token for the server at `path`, through the full login. */
  accessToken(path: string): Promise<string>;
}

/** Starts the gateway (`serve`) on `core` in front of `servers`, with one local user, and waits for it. */
export async function startBenchGateway(options: {
  dir: string;
  core: number | undefined;
  servers: unknown[];
  logLevel?: string;
  workers?: number;
  /** An inspector port: `memoryUsage()` can then read the gateway's V8 heap and external memory. */
  inspectPort?: number;
  /** Another checkout's CLI (`<dir>/src/cli/main.ts`), to compare a change with the code before it in one run. */
  script?: string;
  /** Further top-level configuration keys (`metrics`, say). */
  extraConfig?: Record<string, unknown>;
  /** Name of the config file in `dir`, for several gateways in one run. */
  name?: string;
}): Promise<BenchGateway> {
  const port = await freePort();
  const issuer = `http://localhost:${port}`;
  const password = randomBytes(12).toString('base64url');
  const config = {
    publicUrl: issuer,
    listen: { host: '127.0.0.1', port },
    dataDir: join(options.dir, options.name ? `${options.name}-data` : `data-${port}`),
    ...(options.workers === undefined ? {} : { workers: options.workers }),
    log: { level: options.logLevel ?? (process.env.BENCH_VERBOSE === '1' ? 'debug' : 'warn') },
    identityProviders: [{ type: 'local', users: [{ username: 'bench', passwordHash: await hashPassword(password), email: 'bench@example.com' }] }],
    servers: options.servers,
    // One audit line per MCP call is part of the hot path's cost (docs/audit.md): written to a file
    // here (stderr is the terminal), or switched off with BENCH_AUDIT=off to compare.
    audit: { destination: process.env.BENCH_AUDIT === 'off' ? 'off' : join(options.dir, 'audit.log') },
    ...options.extraConfig,
  };
  const configPath = join(options.dir, `${options.name ?? 'gateway'}-${port}.json`);
  await writeFile(configPath, JSON.stringify(config));
  const inspect = options.inspectPort === undefined ? [] : [`--inspect=127.0.0.1:${options.inspectPort}`];
  const child = spawnNode(options.core, options.script ?? 'src/cli/main.ts', ['serve', '--config', configPath], inspect);
  await waitForUrl(`${issuer}/healthz`, { timeoutMs: 20_000 });
  return {
    issuer,
    child,
    accessToken: (path) => loginWithLocalAccount(issuer, { username: 'bench', password, resource: `${issuer}${path}`, clientName: 'bench' }),
  };
}
