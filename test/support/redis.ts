/**
 * A real redis-server (the Debian package, /usr/bin/redis-server) as a child process, for the storage
 * contract, outage tests and the replicas end-to-end test.
 *
 * It listens on a loopback port from freePort() and keeps its data in a temporary directory, with the
 * persistence docs/storage.md asks for (`appendonly yes`, `appendfsync always` by default, no RDB
 * snapshots), so `kill()` (SIGKILL, no chance to flush) followed by `restart()` on the same port and
 * directory shows exactly what a crashed production Redis would keep. Readiness is the server's own
 * "Ready to accept connections" line (printed after the AOF is loaded), awaited with a deadline.
 *
 * @example
 * const reason = redisUnavailable();
 * if (reason) return t.skip(reason);
 * const redis = await startRedis();
 * // ... storage: { type: 'redis', url: redis.url } ...
 * await redis.kill();
 * await redis.restart();
 * await redis.close();
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.ts';

export const REDIS_SERVER = process.env.REDIS_SERVER ?? '/usr/bin/redis-server';

/** Why redis-server cannot be used here (for `t.skip`), or undefined when it can. */
export function redisUnavailable(): string | undefined {
  if (!existsSync(REDIS_SERVER)) return `redis-server not installed at ${REDIS_SERVER} (Debian package "redis-server")`;
  const version = spawnSync(REDIS_SERVER, ['--version'], { encoding: 'utf8' });
  if (version.status !== 0) return `${REDIS_SERVER} --version failed: ${version.stderr || version.error?.message}`;
  return undefined;
}

export interface RedisOptions {
  /** `requirepass`: clients must AUTH as the `default` user with it. */
  password?: string;
  /** Serve TLS only (`rediss://`), with this certificate; clients are not asked for one. */
  tls?: { certFile: string; keyFile: string; caFile: string };
  /** `always` (every write on disk before the reply) by default; `everysec` is the production default. */
  appendfsync?: 'always' | 'everysec';
  /** More `--name value` arguments, after the defaults (so they override them). */
  extraArgs?: string[];
}

export interface RunningRedis {
  /** `redis://127.0.0.1:<port>` or `rediss://localhost:<port>` with `tls`. */
  url: string;
  port: number;
  /** The data directory (AOF files), kept across kill()/restart(). */
  dir: string;
  pid(): number | undefined;
  /** SIGTERM: Redis finishes its writes and exits. */
  stop(): Promise<void>;
  /** SIGKILL: a crash; only what reached the AOF survives. */
  kill(): Promise<void>;
  /** Starts the server again on the same port and directory, after stop() or kill(). */
  restart(): Promise<void>;
  /** Kills the server if it runs and removes its directory. */
  close(): Promise<void>;
}

const READY_LINE = 'Ready to accept connections';
const START_DEADLINE_MS = 15_000;

export async function startRedis(options: RedisOptions = {}): Promise<RunningRedis> {
  const dir = await mkdtemp(join(tmpdir(), 'mcpgw-redis-'));
  const port = await freePort();
  const args = [
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--appendonly',
    'yes',
    '--appendfsync',
    options.appendfsync ?? 'always',
    '--save',
    '',
    '--maxmemory-policy',
    'noeviction',
    '--daemonize',
    'no',
    '--logfile',
    '',
    ...(options.password ? ['--requirepass', options.password] : []),
    ...(options.tls
      ? [
          '--port',
          '0',
          '--tls-port',
          String(port),
          '--tls-cert-file',
          options.tls.certFile,
          '--tls-key-file',
          options.tls.keyFile,
          '--tls-ca-cert-file',
          options.tls.caFile,
          '--tls-auth-clients',
          'no',
        ]
      : ['--port', String(port)]),
    ...(options.extraArgs ?? []),
  ];
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    child = await spawnRedis(args);
  };
  const signal = async (name: NodeJS.Signals): Promise<void> => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
    running.kill(name);
    await exited;
  };
  await start();
  return {
    url: options.tls ? `rediss://localhost:${port}` : `redis://127.0.0.1:${port}`,
    port,
    dir,
    pid: () => child?.pid,
    stop: () => signal('SIGTERM'),
    kill: () => signal('SIGKILL'),
    restart: async () => {
      await signal('SIGKILL');
      await start();
    },
    close: async () => {
      await signal('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Spawns redis-server and resolves once it says it is ready; rejects with its output if it exits first. */
function spawnRedis(args: string[]): Promise<ChildProcess> {
  const child = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`redis-server not ready after ${START_DEADLINE_MS} ms:\n${output}`));
    }, START_DEADLINE_MS);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      if (output.includes(READY_LINE)) {
        clearTimeout(timer);
        // Keep draining the pipes so a chatty server never blocks on a full one.
        child.stdout?.removeListener('data', onData);
        child.stdout?.resume();
        resolve(child);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
    });
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited (${signal ?? code}) before it was ready:\n${output}`));
    });
  });
}
