/**
 * Several gateway replicas as an operator runs them: separate processes started with the CLI
 * (`node src/cli/main.ts serve --config <file>`), each with its own listen port and `dataDir`, all
 * sharing one real redis-server (test/support/redis.ts), one `publicUrl` and one encryption key, behind
 * a real nginx (test/support/nginx.ts) that balances round-robin.
 *
 * nginx setup, as docs/storage.md recommends for replicas: `proxy_next_upstream error timeout` (its
 * default: a request that could not be *sent* to a dead replica goes to the next one, a POST already
 * sent is never replayed), `max_fails=1` so a dead replica is skipped at once, no buffering (SSE).
 * Every request is logged with the replica that served it (`servedBy()`), so a test can show that
 * the steps of one login landed on different replicas. `pinnedUrl(i)` reaches replica `i` only,
 * through nginx with the same public Host, for tests that need one step on one replica.
 *
 * @example
 * const set = await startReplicas({ count: 3, config: (publicUrl) => ({ servers: [...], identityProviders: [...] }) });
 * await fetch(`${set.publicUrl}/healthz`);
 * await set.replicas[1].kill('SIGKILL');
 * await set.close();
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GatewayConfigInput } from '../../src/config/schema.ts';
import { type RunningNginx, startNginx } from './nginx.ts';
import { freePort, waitForUrl } from './ports.ts';
import { type RedisOptions, type RunningRedis, startRedis } from './redis.ts';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const START_DEADLINE_MS = 30_000;

/** What every replica's configuration shares, besides what the set decides for each one. */
export type SharedConfig = Omit<GatewayConfigInput, 'publicUrl' | 'listen' | 'dataDir' | 'storage' | 'secrets'>;

export interface ReplicaSetOptions {
  count: number;
  /** Everything but publicUrl, listen, dataDir, storage and secrets, which the set decides. */
  /** Called once the public URL is known (an IdP started here can register `<publicUrl>/callback`). */
  config: (publicUrl: string) => SharedConfig | Promise<SharedConfig>;
  redis?: RedisOptions;
  /** Redis `commandTimeoutMs` for the replicas (default 1000). */
  commandTimeoutMs?: number;
}

export interface Replica {
  index: number;
  port: number;
  /** `127.0.0.1:<port>`, as nginx's `$upstream_addr` names it. */
  address: string;
  pid(): number | undefined;
  /** Sends the signal and waits for the process to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Everything the process wrote (JSON log lines, start-up messages). */
  output(): string;
}

export interface ServedRequest {
  method: string;
  path: string;
  status: number;
  /** The replica address(es) nginx tried, as `$upstream_addr` (`a, b` when it moved to the next). */
  upstream: string;
}

export interface ReplicaSet {
  /** The issuer: nginx's address, as every client sees it. */
  publicUrl: string;
  redis: RunningRedis;
  nginx: RunningNginx;
  replicas: Replica[];
  /** A URL on nginx that only ever reaches replica `index` (same Host as publicUrl). */
  pinnedUrl(index: number): string;
  /** nginx's log of the requests so far, in order. */
  servedBy(): Promise<ServedRequest[]>;
  close(): Promise<void>;
}

export async function startReplicas(options: ReplicaSetOptions): Promise<ReplicaSet> {
  const redis = await startRedis(options.redis);
  const publicPort = await freePort();
  const publicUrl = `http://localhost:${publicPort}`;
  const ports = await Promise.all(Array.from({ length: options.count }, () => freePort()));
  const pinnedPorts = await Promise.all(Array.from({ length: options.count }, () => freePort()));
  const dir = await mkdtemp(join(tmpdir(), 'mcpgw-replicas-'));
  const encryptionKey = randomBytes(32).toString('base64');

  const replicas: Replica[] = [];
  try {
    const shared = await options.config(publicUrl);
    for (const [index, port] of ports.entries()) {
      const config: GatewayConfigInput = {
        ...shared,
        publicUrl,
        listen: { host: '127.0.0.1', port },
        dataDir: join(dir, `replica-${index}`),
        storage: { type: 'redis', url: redis.url, keyPrefix: 'replicas:', commandTimeoutMs: options.commandTimeoutMs ?? 1000, connectTimeoutMs: 2000 },
        secrets: { encryptionKeys: [encryptionKey] },
      };
      const file = join(dir, `replica-${index}.json`);
      await writeFile(file, JSON.stringify(config, null, 2)); // JSON is YAML
      replicas.push(spawnReplica(index, port, file));
    }
    await Promise.all(replicas.map((replica) => waitForReplica(replica)));
  } catch (error) {
    for (const replica of replicas) await replica.kill('SIGKILL');
    await redis.close();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }

  const nginx = await startNginx({ port: publicPort, http: (port) => nginxConfig(port, ports, pinnedPorts) });
  return {
    publicUrl,
    redis,
    nginx,
    replicas,
    pinnedUrl: (index) => `http://localhost:${pinnedPorts[index]}`,
    servedBy: async () => parseLog(await readFile(join(nginx.dir, 'replicas.log'), 'utf8').catch(() => '')),
    async close() {
      await nginx.close();
      for (const replica of replicas) await replica.kill('SIGTERM');
      await redis.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function nginxConfig(publicPort: number, ports: number[], pinnedPorts: number[]): string {
  const proxy = [
    'proxy_http_version 1.1;',
    'proxy_set_header Connection "";',
    // One public Host whichever port the request came in on: the gateway routes MCP servers by Host.
    `proxy_set_header Host localhost:${publicPort};`,
    'proxy_buffering off;',
    'proxy_request_buffering off;',
    'proxy_connect_timeout 2s;',
    'proxy_read_timeout 30s;',
  ].join(' ');
  return [
    `  log_format replicas '$request_method $uri $status "$upstream_addr"';`,
    '  upstream gateways {',
    ...ports.map((port) => `    server 127.0.0.1:${port} max_fails=1 fail_timeout=10s;`),
    '    keepalive 32;',
    '  }',
    '  server {',
    `    listen 127.0.0.1:${publicPort};`,
    '    access_log replicas.log replicas;',
    `    location / { proxy_pass http://gateways; proxy_next_upstream error timeout; proxy_next_upstream_tries 3; ${proxy} }`,
    '  }',
    ...pinnedPorts.map((pinned, index) =>
      [
        '  server {',
        `    listen 127.0.0.1:${pinned};`,
        '    access_log replicas.log replicas;',
        `    location / { proxy_pass http://127.0.0.1:${ports[index]}; ${proxy} }`,
        '  }',
      ].join('\n'),
    ),
  ].join('\n');
}

function parseLog(text: string): ServedRequest[] {
  const served: ServedRequest[] = [];
  for (const line of text.split('\n')) {
    const match = /^(\S+) (\S+) (\d+) "([^"]*)"$/.exec(line);
    if (match) served.push({ method: match[1]!, path: match[2]!, status: Number(match[3]), upstream: match[4]! });
  }
  return served;
}

function spawnReplica(index: number, port: number, configFile: string): Replica {
  const child: ChildProcess = spawn(process.execPath, [CLI, 'serve', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const append = (chunk: Buffer): void => {
    output += chunk.toString('utf8');
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    index,
    port,
    address: `127.0.0.1:${port}`,
    pid: () => child.pid,
    async kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
    output: () => output,
  };
}

async function waitForReplica(replica: Replica): Promise<void> {
  try {
    await waitForUrl(`http://127.0.0.1:${replica.port}/healthz`, { timeoutMs: START_DEADLINE_MS, ok: (status) => status === 200 });
  } catch (error) {
    throw new Error(`replica ${replica.index} did not start: ${String(error)}\n${replica.output()}`);
  }
}
