/**
 * Benchmark of the authorization path (docs/performance.md): dynamic client registrations, full logins,
 * refresh grants and `/authorize` with a CIMD client whose document is cached, against the gateway
 * running as its own `serve` process on SQLite (default) or Redis (`--storage redis`).
 *
 * Layout as in bench/run.ts: this process (the load generator, and the CIMD host) pinned to core 0, the
 * gateway to core 1 when `taskset` exists; the gateway's CPU per operation is read from /proc (every
 * thread's schedstat), so the scripted client is never counted. Redis, when used, runs on core 0 and its
 * CPU is reported on its own line.
 *
 * Every figure is measured `--reps` times (interleaved: one round of every phase, then the next round)
 * and printed as the median with the lowest and highest value.
 *
 * Logins use the local identity provider. Its password check (scrypt, ~tens of ms by design) is work an
 * external IdP does in production, so logins are measured twice: with a password hash at the default
 * cost, and with a deliberately cheap hash that leaves the gateway's own work.
 *
 * Usage: `npm run bench:auth [-- --storage redis --reps 3 --registrations 500 --logins 100 --concurrency 16]`;
 * `--only refresh` (or registration, login, authorize, comma-separated) runs only those phases;
 * `--grace 0` turns the refresh reuse grace period off.
 * BENCH_CPU_PROF=<dir> writes the gateway's V8 CPU profile there (bench/harness.ts).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { hashPassword } from '../src/idp/passwords.ts';
import { Browser } from '../test/support/browser.ts';
import { type CimdHost, startCimdHost } from '../test/support/cimd-host.ts';
import { freePort, waitForUrl } from '../test/support/ports.ts';
import { createTestCa } from '../test/support/tls.ts';
import { benchArgs, pinSelf, spawnNode, stopChildren, TASKSET } from './harness.ts';

const args = benchArgs();
const STORAGE = args.get('storage') ?? 'sqlite';
const REPS = Number(args.get('reps') ?? 3);
const REGISTRATIONS = Number(args.get('registrations') ?? 500);
const LOGINS = Number(args.get('logins') ?? 100);
const CONCURRENCY = Number(args.get('concurrency') ?? 16);
const AUTHORIZES = Number(args.get('authorizes') ?? 300);
const SLOW_LOGINS = Number(args.get('slow-logins') ?? 10);
/** `tokens.refreshReuseGraceSeconds` (0 turns the refresh replay off), to measure what it costs; default: the gateway's. */
const GRACE = args.get('grace');
/** Which phases run (for a profile of one of them): any of registration, login, refresh, authorize. */
const ONLY = new Set((args.get('only') ?? 'registration,login,refresh,authorize').split(','));

const REDIRECT_URI = 'http://127.0.0.1:9/callback';

interface Gateway {
  issuer: string;
  pid: number;
  resource: string;
  password: string;
  cheapPassword: string;
}

/** One measured phase: how many operations in how long, the gateway's (and Redis's) CPU, latencies. */
interface Sample {
  perSecond: number;
  cpuMsPerOp: number;
  redisCpuMsPerOp?: number;
  p50Ms: number;
  p99Ms: number;
}

/**
 * CPU time of every thread of a process, in microseconds, from /proc/<pid>/task/<tid>/schedstat (time
 * on CPU in nanoseconds). /proc/<pid>/stat counts in 10 ms clock ticks, too coarse for a phase of 100
 * refreshes at about a millisecond each. A thread that ends during a phase would be missed; the
 * gateway's threads (main, libuv pool, V8 workers) live as long as the process.
 */
async function threadsCpuMicros(pid: number): Promise<number> {
  let nanos = 0;
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    try {
      nanos += Number((await readFile(`/proc/${pid}/task/${tid}/schedstat`, 'utf8')).split(' ')[0]);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return nanos / 1000;
}

async function measure(gateway: Gateway, redisPid: number | undefined, operations: number, run: (latencies: number[]) => Promise<void>): Promise<Sample> {
  const latencies: number[] = [];
  const cpuBefore = await threadsCpuMicros(gateway.pid);
  const redisBefore = redisPid ? await threadsCpuMicros(redisPid) : 0;
  const started = performance.now();
  await run(latencies);
  const elapsedMs = performance.now() - started;
  const cpu = (await threadsCpuMicros(gateway.pid)) - cpuBefore;
  const redisCpu = redisPid ? (await threadsCpuMicros(redisPid)) - redisBefore : undefined;
  latencies.sort((a, b) => a - b);
  return {
    perSecond: (operations * 1000) / elapsedMs,
    cpuMsPerOp: cpu / 1000 / operations,
    redisCpuMsPerOp: redisCpu === undefined ? undefined : redisCpu / 1000 / operations,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
  };
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** Runs `count` tasks with at most `concurrency` in flight, timing each. */
async function pool(count: number, concurrency: number, latencies: number[], task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const index = next++;
      const started = performance.now();
      await task(index);
      latencies.push(performance.now() - started);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

async function register(issuer: string): Promise<string> {
  const response = await fetch(`${issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: 'bench', redirect_uris: [REDIRECT_URI], token_endpoint_auth_method: 'none' }),
  });
  const body = (await response.json()) as { client_id?: string };
  if (response.status !== 201 || !body.client_id) throw new Error(`registration failed: ${response.status} ${JSON.stringify(body)}`);
  return body.client_id;
}

function pkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

function authorizeUrl(gateway: Gateway, clientId: string, challenge: string): URL {
  const url = new URL('/authorize', gateway.issuer);
  const query = {
    response_type: 'code',
    client_id: clientId,
    redirect_uri: REDIRECT_URI,
    state: 'bench',
    resource: gateway.resource,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  };
  for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
  return url;
}

interface Grant {
  clientId: string;
  refreshToken: string;
}

/** Register, /authorize, consent, local sign-in, callback, code for tokens: what a person does once. */
async function login(gateway: Gateway, username: string, password: string): Promise<Grant> {
  const clientId = await register(gateway.issuer);
  const { verifier, challenge } = pkce();
  const browser = new Browser();
  let page = await browser.goto(authorizeUrl(gateway, clientId, challenge));
  page = await browser.submitForm(page, { button: 'approve' });
  page = await browser.submitForm(page, { fields: { username, password }, stopAt: REDIRECT_URI });
  const code = page.url.searchParams.get('code');
  if (!code) throw new Error(`login failed at ${page.url.href}: ${page.text.slice(0, 200)}`);
  const response = await fetch(`${gateway.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT_URI,
      code_verifier: verifier,
      client_id: clientId,
      resource: gateway.resource,
    }),
  });
  const tokens = (await response.json()) as { refresh_token?: string };
  if (!tokens.refresh_token) throw new Error(`no refresh token: ${response.status} ${JSON.stringify(tokens)}`);
  return { clientId, refreshToken: tokens.refresh_token };
}

/** One refresh grant; the grant's refresh token is replaced by the rotated one. */
async function refresh(gateway: Gateway, grant: Grant): Promise<void> {
  const response = await fetch(`${gateway.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: grant.refreshToken, client_id: grant.clientId }),
  });
  const tokens = (await response.json()) as { refresh_token?: string; access_token?: string };
  if (response.status !== 200 || !tokens.refresh_token || !tokens.access_token) throw new Error(`refresh failed: ${response.status} ${JSON.stringify(tokens)}`);
  grant.refreshToken = tokens.refresh_token;
}

/**
 * A refresh grant with a refresh token that does not exist: the token endpoint's whole middleware
 * stack, the client lookup and one storage read, but no write and no signature. The floor a refresh
 * grant cannot go below without changing oidc-provider.
 */
async function refreshUnknown(gateway: Gateway, clientId: string): Promise<void> {
  const response = await fetch(`${gateway.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: randomBytes(32).toString('base64url'), client_id: clientId }),
  });
  const body = (await response.json()) as { error?: string };
  if (response.status !== 400 || body.error !== 'invalid_grant') throw new Error(`expected invalid_grant: ${response.status} ${JSON.stringify(body)}`);
}

/** `/authorize` up to the redirect to the consent page (the client is validated, the interaction stored). */
async function authorizeOnce(gateway: Gateway, clientId: string): Promise<void> {
  const response = await fetch(authorizeUrl(gateway, clientId, pkce().challenge), { redirect: 'manual' });
  await response.arrayBuffer();
  const location = response.headers.get('location') ?? '';
  if (response.status !== 303 && response.status !== 302) throw new Error(`/authorize answered ${response.status}`);
  if (!location.includes('/interaction/')) throw new Error(`/authorize redirected to ${location}`);
}

async function startRedis(dir: string): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  // AOF with fsync every second: the persistence the gateway's Redis documentation asks for.
  const redisArgs = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'everysec'];
  const [command, commandArgs] = TASKSET ? ['taskset', ['-c', '0', '/usr/bin/redis-server', ...redisArgs]] : ['/usr/bin/redis-server', redisArgs];
  const child = spawn(command, commandArgs, { stdio: 'ignore' });
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ready = await new Promise<boolean>((resolve) => {
      import('node:net').then(({ connect }) => {
        const socket = connect(port, '127.0.0.1');
        socket.once('connect', () => {
          socket.end();
          resolve(true);
        });
        socket.once('error', () => resolve(false));
      });
    });
    if (ready) break;
    if (Date.now() > deadline) throw new Error('redis-server did not start');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { url: `redis://127.0.0.1:${port}`, child };
}

async function startGateway(dir: string, caFile: string, storage: unknown): Promise<{ gateway: Gateway; child: ChildProcess }> {
  const port = await freePort();
  const issuer = `http://localhost:${port}`;
  const password = randomBytes(12).toString('base64url');
  const cheapPassword = randomBytes(12).toString('base64url');
  const config = {
    publicUrl: issuer,
    listen: { host: '127.0.0.1', port },
    dataDir: join(dir, 'data'),
    storage,
    // Configured keys, as replicas on Redis need (one generated per dataDir would differ between them).
    secrets: { encryptionKeys: [randomBytes(32).toString('base64')] },
    ...(GRACE === undefined ? {} : { tokens: { refreshReuseGraceSeconds: Number(GRACE) } }),
    log: { level: process.env.BENCH_VERBOSE === '1' ? 'debug' : 'warn' },
    // Every registration of this bench comes from one address; the limit is measured as part of the
    // path (it counts) but set high enough not to refuse.
    registration: { rateLimit: { perAddress: 1_000_000, windowSeconds: 3600 } },
    clientIdMetadataDocuments: { allowPrivateAddresses: true },
    extraCaCertificatesFile: caFile,
    identityProviders: [
      {
        type: 'local',
        users: [
          { username: 'bench', passwordHash: await hashPassword(password), email: 'bench@example.com' },
          // scrypt N = 2^4 (default 2^15): leaves the gateway's own work in a login's CPU time.
          { username: 'cheap', passwordHash: await cheapHash(cheapPassword), email: 'cheap@example.com' },
        ],
      },
    ],
    // Never contacted: the authorization path does not reach the MCP server.
    servers: [{ name: 'bench', path: '/mcp', upstream: { url: 'http://127.0.0.1:9/mcp' } }],
  };
  const configPath = join(dir, 'gateway.json');
  await writeFile(configPath, JSON.stringify(config));
  const child = spawnNode(1, 'src/cli/main.ts', ['serve', '--config', configPath]);
  // A configuration this gateway refuses (say, `--storage redis` on a build without Redis) ends the
  // process at once; say so instead of waiting for the health check to time out.
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`the gateway exited with code ${code} before it was ready (its output is above)`))),
  );
  await Promise.race([waitForUrl(`${issuer}/healthz`, { timeoutMs: 30_000 }), exited]);
  return { gateway: { issuer, pid: child.pid!, resource: `${issuer}/mcp`, password, cheapPassword }, child };
}

/** The hash format of src/idp/passwords.ts with a tiny cost (bench only; never for real accounts). */
async function cheapHash(password: string): Promise<string> {
  const { scryptSync } = await import('node:crypto');
  const salt = randomBytes(16);
  const hash = scryptSync(password.normalize('NFC'), salt, 32, { N: 16, r: 8, p: 1 });
  return `scrypt$16$8$1$${salt.toString('base64')}$${hash.toString('base64')}`;
}

type Phase = { group: string; label: string; target?: string; run: () => Promise<Sample> };

function summarise(values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  const digits = (n: number) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));
  return `${digits(median)} (${digits(sorted[0]!)}–${digits(sorted.at(-1)!)})`;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mcpgw-bench-auth-'));
  const children: ChildProcess[] = [];
  let cimd: CimdHost | undefined;
  try {
    pinSelf(0);
    const ca = await createTestCa(dir);
    let storage: unknown = { type: 'sqlite' };
    let redisPid: number | undefined;
    if (STORAGE === 'redis') {
      const redis = await startRedis(join(dir));
      children.push(redis.child);
      redisPid = redis.child.pid;
      storage = { type: 'redis', url: redis.url };
    } else if (STORAGE !== 'sqlite') {
      throw new Error(`--storage must be sqlite or redis, not ${STORAGE}`);
    }
    const started = await startGateway(dir, ca.caFile, storage);
    children.push(started.child);
    const { gateway } = started;

    cimd = await startCimdHost({ tls: ca });
    const cimdClientId = cimd.document('/oauth/client.json', {
      client_name: 'bench CIMD client',
      redirect_uris: [REDIRECT_URI],
      token_endpoint_auth_method: 'none',
    });

    // Warm-up: JIT, the CIMD document fetched and cached, one login of each kind.
    for (let i = 0; i < 20; i++) await register(gateway.issuer);
    await authorizeOnce(gateway, cimdClientId);
    const dcrClientId = await register(gateway.issuer);
    for (let i = 0; i < 20; i++) await authorizeOnce(gateway, cimdClientId);
    for (let i = 0; i < 5; i++) await login(gateway, 'cheap', gateway.cheapPassword);
    await login(gateway, 'bench', gateway.password);
    const cimdFetches = cimd.requestsFor('/oauth/client.json').length;

    let grants: Grant[] = [];
    const phases: Phase[] = [
      {
        group: 'registration',
        label: 'registration, sequential',
        target: '≤ 2 ms CPU',
        run: () => measure(gateway, redisPid, REGISTRATIONS, (l) => pool(REGISTRATIONS, 1, l, () => register(gateway.issuer).then(() => {}))),
      },
      {
        group: 'registration',
        label: `registration, ${CONCURRENCY} concurrent`,
        run: () => measure(gateway, redisPid, REGISTRATIONS, (l) => pool(REGISTRATIONS, CONCURRENCY, l, () => register(gateway.issuer).then(() => {}))),
      },
      {
        group: 'login',
        label: 'full login (cheap hash), sequential',
        target: '≤ 15 ms CPU',
        run: async () => {
          const fresh: Grant[] = [];
          const sample = await measure(gateway, redisPid, LOGINS, (l) =>
            pool(LOGINS, 1, l, async () => {
              fresh.push(await login(gateway, 'cheap', gateway.cheapPassword));
            }),
          );
          grants = fresh;
          return sample;
        },
      },
      {
        group: 'login',
        label: 'full login (scrypt 2^15 hash)',
        run: () => measure(gateway, redisPid, SLOW_LOGINS, (l) => pool(SLOW_LOGINS, 1, l, () => login(gateway, 'bench', gateway.password).then(() => {}))),
      },
      {
        group: 'refresh',
        label: 'refresh grant, sequential',
        target: '≥ 1000/s',
        run: () => measure(gateway, redisPid, grants.length, (l) => pool(grants.length, 1, l, (i) => refresh(gateway, grants[i]!))),
      },
      {
        group: 'refresh',
        label: `refresh grant, ${CONCURRENCY} concurrent`,
        target: '≥ 1000/s',
        run: () => measure(gateway, redisPid, grants.length, (l) => pool(grants.length, CONCURRENCY, l, (i) => refresh(gateway, grants[i]!))),
      },
      {
        group: 'refresh',
        label: 'token endpoint floor (invalid_grant)',
        run: () => measure(gateway, redisPid, AUTHORIZES, (l) => pool(AUTHORIZES, 1, l, () => refreshUnknown(gateway, dcrClientId))),
      },
      {
        group: 'authorize',
        label: '/authorize, CIMD client (cached)',
        run: () => measure(gateway, redisPid, AUTHORIZES, (l) => pool(AUTHORIZES, 1, l, () => authorizeOnce(gateway, cimdClientId))),
      },
      {
        group: 'authorize',
        label: '/authorize, DCR client',
        run: () => measure(gateway, redisPid, AUTHORIZES, (l) => pool(AUTHORIZES, 1, l, () => authorizeOnce(gateway, dcrClientId))),
      },
    ];

    if (!ONLY.has('login')) {
      for (let i = 0; i < LOGINS; i++) grants.push(await login(gateway, 'cheap', gateway.cheapPassword));
    }
    const selected = phases.filter((phase) => ONLY.has(phase.group));
    const results = new Map<string, Sample[]>();
    for (let rep = 0; rep < REPS; rep++) {
      for (const phase of selected) {
        const sample = await phase.run();
        results.set(phase.label, [...(results.get(phase.label) ?? []), sample]);
        if (process.env.BENCH_VERBOSE === '1') console.error(rep, phase.label, sample);
      }
    }
    const cimdRefetches = cimd.requestsFor('/oauth/client.json').length - cimdFetches;

    const cpu = cpus();
    console.log(`machine: ${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores, node ${process.version}, ${process.platform} ${process.arch}`);
    // Other processes on the machine inflate wall-clock figures (ops/s, latency) far more than CPU per operation.
    console.log(
      `load average at the end: ${loadavg()
        .map((load) => load.toFixed(1))
        .join(' ')}`,
    );
    console.log(
      `storage: ${STORAGE}; ${REPS} repetitions, median (min–max); ${TASKSET ? 'load generator on core 0, gateway on core 1' : 'taskset missing: processes not pinned'}`,
    );
    console.log(
      `registrations ${REGISTRATIONS}, logins ${LOGINS} (+${SLOW_LOGINS} with the default hash), refreshes ${LOGINS} per round, /authorize ${AUTHORIZES}, concurrency ${CONCURRENCY}`,
    );
    console.log(`CIMD document fetched again during the runs: ${cimdRefetches} time(s)\n`);
    const header = ['phase', 'ops/s', 'gateway CPU ms/op', ...(redisPid ? ['redis CPU ms/op'] : []), 'p50 ms', 'p99 ms', 'target'];
    const rows = selected.map((phase) => {
      const samples = results.get(phase.label)!;
      return [
        phase.label,
        summarise(samples.map((s) => s.perSecond)),
        summarise(samples.map((s) => s.cpuMsPerOp)),
        ...(redisPid ? [summarise(samples.map((s) => s.redisCpuMsPerOp ?? 0))] : []),
        summarise(samples.map((s) => s.p50Ms)),
        summarise(samples.map((s) => s.p99Ms)),
        phase.target ?? '',
      ];
    });
    const widths = header.map((_, i) => Math.max(header[i]!.length, ...rows.map((row) => row[i]!.length)));
    const line = (cells: string[]) => `| ${cells.map((cell, i) => cell.padEnd(widths[i]!)).join(' | ')} |`;
    console.log(line(header));
    console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
    for (const row of rows) console.log(line(row));
  } finally {
    await cimd?.close();
    await stopChildren(children);
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
