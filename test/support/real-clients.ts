/**
 * The real MCP client programs, as published on npm, for test/e2e/real-clients.test.ts: pinned
 * versions, installed once into a cache outside the repository, run with a scratch HOME each, with
 * no model behind them (logging in and listing tools needs none). docs/clients.md says what each
 * one does; this module only knows how to install and start them.
 *
 * Where they go: `$MCP_GATEWAY_CLIENTS_CACHE`, else `~/.cache/mcp-gateway-clients/<package>@<version>`
 * (`npm install --prefix`, into a temporary directory renamed into place, so a half-finished install
 * is never used). A program that cannot be installed (no registry, no prebuilt binary for this
 * platform) makes its test skip with npm's own words; CI installs them all.
 *
 * @example
 * const codex = await installRealClient('codex');
 * if ('skip' in codex) return t.skip(codex.skip);
 * execFile(codex.bin, ['mcp', 'list'], { env: clientEnv(home, browser.script) });
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { closeServer, listen } from './ports.ts';

/** Versions tested (docs/clients.md). Raise them together with that page. */
export const REAL_CLIENTS = {
  codex: { pkg: '@openai/codex', version: '0.171.0', bin: 'codex' },
  claude: { pkg: '@anthropic-ai/claude-code', version: '2.1.332', bin: 'claude' },
  gemini: { pkg: '@google/gemini-cli', version: '0.61.0', bin: 'gemini' },
  inspector: { pkg: '@modelcontextprotocol/inspector', version: '2.12.0', bin: 'mcp-inspector' },
} as const;

export type RealClientName = keyof typeof REAL_CLIENTS;

/** Generous: the first install downloads a few hundred MB (Codex and Claude Code ship native binaries). */
const INSTALL_TIMEOUT_MS = 8 * 60_000;

function cacheRoot(): string {
  return process.env.MCP_GATEWAY_CLIENTS_CACHE ?? join(homedir(), '.cache', 'mcp-gateway-clients');
}

/** The program's executable, installing it first when the cache does not have it. */
export async function installRealClient(name: RealClientName): Promise<{ bin: string; version: string } | { skip: string }> {
  const { pkg, version, bin } = REAL_CLIENTS[name];
  const dir = join(cacheRoot(), `${pkg.replace(/^@/, '').replace('/', '+')}@${version}`);
  const executable = join(dir, 'node_modules', '.bin', bin);
  if (existsSync(executable)) return { bin: executable, version };
  const staging = `${dir}.installing-${process.pid}`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  const npm = join(dirname(process.execPath), 'npm');
  const outcome = await run(
    existsSync(npm) ? npm : 'npm',
    ['install', '--prefix', staging, '--no-audit', '--no-fund', '--loglevel=error', `${pkg}@${version}`],
    {
      timeoutMs: INSTALL_TIMEOUT_MS,
    },
  );
  if (outcome.code !== 0 || !existsSync(join(staging, 'node_modules', '.bin', bin))) {
    await rm(staging, { recursive: true, force: true });
    const errors = outcome.output.split('\n').filter((line) => /^npm (error|ERR!)/.test(line));
    const said = errors.length > 0 ? errors.slice(0, 4).join(' / ') : outcome.output.trim().slice(-600);
    return { skip: `${pkg}@${version} could not be installed (npm exit ${outcome.code}): ${said}` };
  }
  // Another run may have finished first; either copy is complete.
  if (existsSync(executable)) await rm(staging, { recursive: true, force: true });
  else await rename(staging, dir);
  return { bin: executable, version };
}

/**
 * The environment every program runs with: nothing of ours (no CI, no tokens, no proxy settings),
 * a scratch HOME, and a browser that is our script.
 * - `DISPLAY` names a display no one serves: Codex and Gemini CLI only launch a browser when one
 *   is set (they print the URL otherwise); none of them draws on it.
 * - `XDG_DATA_DIRS`/`XDG_DATA_HOME` point at an empty directory, so `xdg-open` finds no desktop
 *   handler for http and runs `$BROWSER <url>` (Debian's xdg-open, "generic" desktop).
 * - `CI` is absent on purpose: Gemini CLI never opens a browser when it is set.
 * - `PATH` starts with this Node (24), which Gemini CLI and the Inspector run on.
 */
export function clientEnv(home: string, browserScript: string, extra: Record<string, string> = {}): Record<string, string> {
  const emptyXdg = join(home, '.empty-xdg');
  return {
    PATH: [dirname(process.execPath), '/usr/local/bin', '/usr/bin', '/bin'].join(':'),
    HOME: home,
    TERM: 'xterm-256color',
    LANG: 'C.UTF-8',
    DISPLAY: ':99',
    XDG_DATA_DIRS: emptyXdg,
    XDG_DATA_HOME: emptyXdg,
    XDG_CONFIG_HOME: join(home, '.config'),
    BROWSER: browserScript,
    ...extra,
  };
}

export interface RunResult {
  code: number | null;
  /** stdout and stderr, interleaved as they came. */
  output: string;
  stdout: string;
}

/** Runs a program to its end (killed at the deadline, by its own pid), stdin closed. */
export function run(
  command: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { env: options.env ?? process.env, cwd: options.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    const deadline = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', (error) => {
      clearTimeout(deadline);
      resolve({ code: -1, output: `${output}\n${error.message}`, stdout });
    });
    child.on('close', (code) => {
      clearTimeout(deadline);
      resolve({ code, output, stdout });
    });
    child.stdin.on('error', () => {}); // a program that exits without reading its stdin: EPIPE is no failure
    child.stdin.end(options.input ?? '');
  });
}

/** Whether tmux is here; Claude Code's and Gemini CLI's logins need a terminal. */
export function tmuxAvailable(): Promise<boolean> {
  return new Promise((resolve) => execFile('tmux', ['-V'], (error) => resolve(error === null)));
}

/**
 * One program in a terminal of its own: a tmux server on a private socket (so `close` ends only it),
 * one 200x50 window. The test reads the screen and types, as a person would.
 */
export class Terminal {
  readonly #socket: string;
  /** The program's process group: tmux starts each pane in a session of its own. */
  readonly #group: number;

  private constructor(socket: string, group: number) {
    this.#socket = socket;
    this.#group = group;
  }

  /** `command` runs through `env -i` with exactly `env`, in `cwd`. */
  static async open(socketDir: string, command: string[], env: Record<string, string>, cwd: string): Promise<Terminal> {
    const socket = join(socketDir, 'tmux.sock');
    const assignments = Object.entries(env).map(([key, value]) => `${key}=${value}`);
    // No tmux.conf of anyone's; the window stays after the program ends, so its last words can still be read.
    const args = ['-f', '/dev/null', '-S', socket, 'new-session', '-d', '-x', '200', '-y', '50', '-c', cwd, 'env', '-i', ...assignments, ...command];
    const started = await run('tmux', [...args, ';', 'set-option', '-g', 'remain-on-exit', 'on'], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: env.HOME ?? '/' },
    });
    if (started.code !== 0) throw new Error(`tmux could not start ${command.join(' ')}: ${started.output}`);
    const pane = await run('tmux', ['-S', socket, 'display-message', '-p', '#{pane_pid}']);
    return new Terminal(socket, Number(pane.stdout.trim()));
  }

  /** The whole window, with the scrollback. */
  async screen(): Promise<string> {
    const captured = await run('tmux', ['-S', this.#socket, 'capture-pane', '-p', '-J', '-S', '-200']);
    return captured.stdout;
  }

  /** Waits until the screen matches, or fails at once on `failOn` (a deadline only so that a failure names what was on screen). */
  async waitFor(pattern: RegExp, what: string, options: { failOn?: RegExp; timeoutMs?: number } = {}): Promise<string> {
    const deadline = Date.now() + (options.timeoutMs ?? 60_000);
    let screen = '';
    while (Date.now() < deadline) {
      screen = await this.screen();
      if (pattern.test(screen)) return screen;
      if (options.failOn?.test(screen)) throw new Error(`${what}: the terminal showed ${options.failOn} instead of ${pattern}:\n${screen}`);
      await sleep(200);
    }
    throw new Error(`${what}: the terminal never showed ${pattern}. It shows:\n${screen}`);
  }

  async type(text: string): Promise<void> {
    await run('tmux', ['-S', this.#socket, 'send-keys', '-l', text]);
  }

  async press(...keys: string[]): Promise<void> {
    await run('tmux', ['-S', this.#socket, 'send-keys', ...keys]);
  }

  /**
   * Ends this terminal's tmux server and the program's whole process group (Gemini CLI relaunches
   * itself as a child that outlives the hangup tmux sends); nothing else.
   */
  async close(): Promise<void> {
    await run('tmux', ['-S', this.#socket, 'kill-server']);
    if (this.#group > 1) {
      try {
        process.kill(-this.#group, 'SIGKILL');
      } catch {} // gone already
    }
  }
}

export interface RecordedRequest {
  method: string;
  /** Path and query as the program sent them. */
  path: string;
  status: number;
}

/**
 * A pass-through HTTP recorder in front of the gateway, so a test can state how a real program
 * discovers (which URLs, in which order, with which method) without the gateway logging every
 * request. Bytes pass unchanged both ways, streamed (SSE included); the gateway's `publicUrl` is
 * the recorder's URL, as it would be a reverse proxy's.
 */
export async function startRecorder(targetPort: number): Promise<{ port: number; requests: RecordedRequest[]; close(): Promise<void> }> {
  const requests: RecordedRequest[] = [];
  const server = createServer((req, res) => {
    const entry: RecordedRequest = { method: req.method ?? '', path: req.url ?? '', status: 0 };
    requests.push(entry);
    const upstream = request({ host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      entry.status = answer.statusCode ?? 0;
      res.writeHead(answer.statusCode ?? 502, answer.rawHeaders);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  const port = await listen(server);
  return { port, requests, close: () => closeServer(server) };
}
