/**
 * A real nginx (the Debian package, /usr/sbin/nginx) as a child process, for end-to-end tests of
 * configurations operators copy from docs/forward-auth.md.
 *
 * Everything lives in a temporary prefix directory: the generated nginx.conf, the pid file, the error and
 * access logs, and the temp paths nginx writes request bodies and proxied responses to, so nothing
 * touches /var or /etc. nginx runs in the foreground (`daemon off;`) and is stopped with SIGTERM (fast
 * shutdown); the temp directory is removed afterwards. As root, `user root;` keeps the worker able to
 * use the 0700 temp directory (nginx would otherwise switch workers to `nobody`).
 *
 * @example
 * const reason = nginxUnavailable();
 * if (reason) return t.skip(reason);
 * const nginx = await startNginx({ http: (port) => `server { listen 127.0.0.1:${port}; location / { return 204; } }` });
 * await fetch(nginx.url);
 * await nginx.close();
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.ts';

export const NGINX_BINARY = process.env.NGINX_BINARY ?? '/usr/sbin/nginx';

/** Why nginx cannot be used here (for `t.skip`), or undefined when it can. */
export function nginxUnavailable(): string | undefined {
  if (!existsSync(NGINX_BINARY)) return `nginx not installed at ${NGINX_BINARY} (Debian package "nginx")`;
  const version = spawnSync(NGINX_BINARY, ['-v'], { encoding: 'utf8' });
  if (version.status !== 0) return `${NGINX_BINARY} -v failed: ${version.stderr || version.error?.message}`;
  return undefined;
}

export interface NginxOptions {
  /** The contents of the `http { … }` block, given the port nginx must listen on (127.0.0.1). */
  http: (port: number) => string;
  /** Listen port; a free one by default (it must be known before the config is written). */
  port?: number;
}

export interface RunningNginx {
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  /** The prefix directory (config, logs, temp paths). */
  dir: string;
  config: string;
  errorLog(): Promise<string>;
  accessLog(): Promise<string>;
  close(): Promise<void>;
}

export async function startNginx(options: NginxOptions): Promise<RunningNginx> {
  const dir = await mkdtemp(join(tmpdir(), 'mcpgw-nginx-'));
  const port = options.port ?? (await freePort());
  const errorLog = join(dir, 'error.log');
  const accessLog = join(dir, 'access.log');
  const config = [
    'daemon off;',
    'worker_processes 1;',
    ...(process.getuid?.() === 0 ? ['user root;'] : []),
    `pid ${join(dir, 'nginx.pid')};`,
    `error_log ${errorLog} info;`,
    'events { worker_connections 512; }',
    'http {',
    `  access_log ${accessLog};`,
    `  client_body_temp_path ${join(dir, 'client_body')};`,
    `  proxy_temp_path ${join(dir, 'proxy')};`,
    `  fastcgi_temp_path ${join(dir, 'fastcgi')};`,
    `  uwsgi_temp_path ${join(dir, 'uwsgi')};`,
    `  scgi_temp_path ${join(dir, 'scgi')};`,
    options.http(port),
    '}',
    '',
  ].join('\n');
  const configFile = join(dir, 'nginx.conf');
  await writeFile(configFile, config);

  // `-e` keeps nginx away from /var/log/nginx before it has read the config.
  const test = spawnSync(NGINX_BINARY, ['-t', '-p', dir, '-e', errorLog, '-c', configFile], { encoding: 'utf8' });
  if (test.status !== 0) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`nginx rejected the generated config:\n${test.stderr}\n--- config ---\n${config}`);
  }
  const child = spawn(NGINX_BINARY, ['-p', dir, '-e', errorLog, '-c', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await waitForPort(port, 10_000, () => child.exitCode !== null);
  } catch (error) {
    child.kill('SIGKILL');
    await exited;
    const log = await readFile(errorLog, 'utf8').catch(() => '');
    await rm(dir, { recursive: true, force: true });
    throw new Error(`nginx did not start: ${String(error)}\n${stderr}\n${log}`);
  }

  let closed = false;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    dir,
    config,
    errorLog: () => readFile(errorLog, 'utf8').catch(() => ''),
    accessLog: () => readFile(accessLog, 'utf8').catch(() => ''),
    async close() {
      if (closed) return;
      closed = true;
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function waitForPort(port: number, timeoutMs: number, gaveUp: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (gaveUp()) throw new Error('nginx exited');
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`port ${port} did not open within ${timeoutMs} ms`);
}
