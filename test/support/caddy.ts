/**
 * A real Caddy (the Debian package, /usr/bin/caddy, or `CADDY_BINARY`) as a child process, for
 * end-to-end tests of configurations operators copy from docs/forward-auth.md.
 *
 * Everything lives in a temporary directory: the Caddyfile, and HOME / XDG_DATA_HOME / XDG_CONFIG_HOME,
 * where Caddy keeps its storage (certificates, locks) and the autosaved config, so nothing touches the
 * real home directory. The global options written before the caller's sites turn the admin endpoint off
 * (no fixed :2019 port shared between parallel tests) and automatic HTTPS off (plain http on loopback:
 * the gateway accepts http resource URLs only there). Caddy runs in the foreground (`caddy run`) and is
 * stopped with SIGTERM (graceful); the directory is removed afterwards.
 *
 * @example
 * const reason = caddyUnavailable();
 * if (reason) return t.skip(reason);
 * const caddy = await startCaddy({ caddyfile: (port) => `http://127.0.0.1:${port} {\n\trespond 204\n}` });
 * await fetch(caddy.url);
 * await caddy.close();
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForUrl } from './ports.ts';

export const CADDY_BINARY = process.env.CADDY_BINARY ?? '/usr/bin/caddy';

/** Why Caddy cannot be used here (for `t.skip`), or undefined when it can. */
export function caddyUnavailable(): string | undefined {
  if (!existsSync(CADDY_BINARY)) return `caddy not installed at ${CADDY_BINARY} (Debian package "caddy", or set CADDY_BINARY)`;
  const version = spawnSync(CADDY_BINARY, ['version'], { encoding: 'utf8' });
  if (version.status !== 0) return `${CADDY_BINARY} version failed: ${version.stderr || version.error?.message}`;
  return undefined;
}

export interface CaddyOptions {
  /**
   * The site blocks of the Caddyfile (no global options block: this module writes it), given the port
   * Caddy must listen on. The site address must be `http://127.0.0.1:<port>` or `http://localhost:<port>`.
   */
  caddyfile: (port: number) => string;
  /** Listen port; a free one by default (it must be known before the Caddyfile is written). */
  port?: number;
}

export interface RunningCaddy {
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  /** The temporary directory (Caddyfile, HOME, XDG directories). */
  dir: string;
  /** The whole Caddyfile as written, global options included. */
  config: string;
  /** Everything Caddy wrote to stderr so far (its JSON logs). */
  log: () => string;
  close(): Promise<void>;
}

/** The global options every test Caddy runs with; see the module comment for why. */
const GLOBAL_OPTIONS = `{
	admin off
	auto_https off
}
`;

/** Starts Caddy with the given sites and waits until its port answers http. */
export async function startCaddy(options: CaddyOptions): Promise<RunningCaddy> {
  const port = options.port ?? (await freePort());
  const dir = await mkdtemp(join(tmpdir(), 'caddy-'));
  const config = `${GLOBAL_OPTIONS}\n${options.caddyfile(port)}\n`;
  const configFile = join(dir, 'Caddyfile');
  await writeFile(configFile, config);
  const home = join(dir, 'home');
  await Promise.all([mkdir(join(home, 'data'), { recursive: true }), mkdir(join(home, 'config'), { recursive: true })]);

  const child = spawn(CADDY_BINARY, ['run', '--config', configFile, '--adapter', 'caddyfile'], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, XDG_DATA_HOME: join(home, 'data'), XDG_CONFIG_HOME: join(home, 'config') },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;

  try {
    // Any http answer means the server is up; a Caddy that exited (bad Caddyfile) fails at once.
    const ready = waitForUrl(url, { timeoutMs: 15_000 }).then(() => 'ready' as const);
    ready.catch(() => undefined);
    if ((await Promise.race([ready, exited.then(() => 'exited' as const)])) === 'exited') {
      throw new Error(`caddy exited with code ${child.exitCode}`);
    }
  } catch (error) {
    child.kill('SIGKILL');
    await exited;
    await rm(dir, { recursive: true, force: true });
    throw new Error(`caddy did not start: ${String(error)}\n${stderr}\n--- Caddyfile ---\n${config}`);
  }

  let closed = false;
  return {
    url,
    port,
    dir,
    config,
    log: () => stderr,
    async close() {
      if (closed) return;
      closed = true;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
