/**
 * What every benchmark here needs: command-line flags, child processes pinned to a core (load
 * generator on core 0, gateway and upstreams on core 1, when `taskset` exists), their CPU time and
 * memory from /proc, the gateway started as its own `serve` process with a local bench user, and an
 * access token obtained through the full login a person does (register, consent, sign-in, token).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hashPassword } from '../src/idp/passwords.ts';
import { Browser } from '../test/support/browser.ts';
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
export function spawnNode(core: number | undefined, script: string, scriptArgs: string[]): ChildProcess {
  const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : [];
  const nodeArgs = [...profile, script, ...scriptArgs];
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
}): Promise<BenchGateway> {
  const port = await freePort();
  const issuer = `http://localhost:${port}`;
  const password = randomBytes(12).toString('base64url');
  const config = {
    publicUrl: issuer,
    listen: { host: '127.0.0.1', port },
    dataDir: join(options.dir, `data-${port}`),
    workers: options.workers ?? 1,
    log: { level: options.logLevel ?? (process.env.BENCH_VERBOSE === '1' ? 'debug' : 'warn') },
    identityProviders: [{ type: 'local', users: [{ username: 'bench', passwordHash: await hashPassword(password), email: 'bench@example.com' }] }],
    servers: options.servers,
  };
  const configPath = join(options.dir, `gateway-${port}.json`);
  await writeFile(configPath, JSON.stringify(config));
  const child = spawnNode(options.core, 'src/cli/main.ts', ['serve', '--config', configPath]);
  await waitForUrl(`${issuer}/healthz`, { timeoutMs: 20_000 });
  return { issuer, child, accessToken: (path) => login(issuer, password, `${issuer}${path}`) };
}

/** Register, consent, local sign-in, code for token: the flow a person goes through once. */
async function login(issuer: string, password: string, resource: string): Promise<string> {
  const redirectUri = 'http://127.0.0.1:9/callback';
  const registration = await fetch(`${issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: 'bench', redirect_uris: [redirectUri], token_endpoint_auth_method: 'none' }),
  });
  const { client_id: clientId } = (await registration.json()) as { client_id: string };
  const verifier = randomBytes(32).toString('base64url');
  const authorize = new URL('/authorize', issuer);
  const query = {
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    state: 'bench',
    resource,
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  };
  for (const [key, value] of Object.entries(query)) authorize.searchParams.set(key, value);
  const browser = new Browser();
  let page = await browser.goto(authorize);
  page = await browser.submitForm(page, { button: 'approve' });
  page = await browser.submitForm(page, { fields: { username: 'bench', password }, stopAt: redirectUri });
  const code = page.url.searchParams.get('code');
  if (!code) throw new Error(`login failed at ${page.url.href}: ${page.text.slice(0, 200)}`);
  const token = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier, client_id: clientId, resource }),
  });
  return ((await token.json()) as { access_token: string }).access_token;
}
