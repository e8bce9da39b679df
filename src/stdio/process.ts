/**
 * One spawned stdio MCP server: newline-delimited JSON-RPC on stdin/stdout (MCP Transports, stdio:
 * "Messages are delimited by newlines, and MUST NOT contain embedded newlines"), stderr lines to the
 * logs under the server's name, and exit detection.
 *
 * The child runs in its own process group (`detached: true`) so that stopping it reaches what `npx`,
 * `uvx` or a shell wrapper started under it: the group is signalled, not just the direct child.
 * Shutdown follows MCP Transports (stdio, Shutdown): close stdin, wait, SIGTERM, wait, SIGKILL.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { type Clock, systemClock } from '../core/clock.ts';
import { isJsonRpcMessage } from '../core/jsonrpc.ts';
import type { Logger } from '../observability/logger.ts';

export interface SpawnSpec {
  command: string;
  args: readonly string[];
  env: Record<string, string>;
  cwd?: string;
}

export interface StdioProcessOptions {
  /** Server name, in every log line. */
  name: string;
  /** User id for per-user processes (logged, never used otherwise). */
  userId?: string;
  logger: Logger;
  /** Stamps `startedAt`, so the restart backoff measures a process's life on the connection's clock. */
  clock?: Clock;
  onMessage: (message: JSONRPCMessage) => void;
  /** Called once, when the direct child has exited (or could not be spawned). */
  onExit: (info: ExitInfo) => void;
  /** Longest stdout line (one message) kept while waiting for its newline; `MAX_MESSAGE_BYTES` by default. */
  maxMessageBytes?: number;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Spawn failure (ENOENT, EACCES), when there was one. */
  error?: Error;
  /** True when `stop()` asked for it. */
  requested: boolean;
}

/** Longest stderr line logged; the rest is cut so a binary dump cannot flood the logs. */
const MAX_STDERR_LINE = 4096;
const NEWLINE = 0x0a;
/**
 * Longest message read from a process's stdout. Generous (a tool result may carry a large image as
 * base64), but bounded: a process that writes without ever ending its line would otherwise grow the
 * gateway's memory until it dies. Past it the process is killed and handled as a crash (its requests
 * in flight get JSON-RPC errors, and it is restarted with backoff).
 */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

export class StdioProcess {
  readonly pid: number | undefined;
  /** Epoch ms by the options' clock. */
  readonly startedAt: number;
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #options: StdioProcessOptions;
  #stdoutParts: Buffer[] = [];
  #stdoutPartBytes = 0;
  /** The process wrote a line over the limit and is being killed: its stdout is no longer read. */
  #overflowed = false;
  #stderrPart = '';
  #exited = false;
  #stopRequested = false;
  readonly #exitedPromise: Promise<void>;

  constructor(spec: SpawnSpec, options: StdioProcessOptions) {
    this.#options = options;
    this.startedAt = (options.clock ?? systemClock).now();
    this.#child = spawn(spec.command, [...spec.args], {
      env: spec.env,
      cwd: spec.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
      // Own process group: the whole tree can be signalled at once (no orphaned grandchildren).
      detached: true,
      windowsHide: true,
    });
    this.pid = this.#child.pid;
    let resolveExited!: () => void;
    this.#exitedPromise = new Promise((resolve) => {
      resolveExited = resolve;
    });
    let spawnError: Error | undefined;
    this.#child.once('error', (error) => {
      // ENOENT/EACCES arrive here without an 'exit' event; a kill() failure after exit may too.
      spawnError = error;
      if (this.pid === undefined) finish(null, null);
    });
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (this.#exited) return;
      this.#exited = true;
      this.#flushStderr();
      resolveExited();
      options.onExit({ code, signal, error: spawnError, requested: this.#stopRequested });
    };
    this.#child.once('exit', finish);
    this.#child.stdout.on('data', (chunk: Buffer) => this.#onStdout(chunk));
    this.#child.stderr.setEncoding('utf8');
    this.#child.stderr.on('data', (chunk: string) => this.#onStderr(chunk));
    // EPIPE when the child dies while we write: the exit event reports it, this must not throw.
    this.#child.stdin.on('error', (error) => {
      if (options.logger.isLevelEnabled('debug')) options.logger.debug({ server: options.name, pid: this.pid, err: error }, 'stdio server stdin closed');
    });
  }

  get exited(): boolean {
    return this.#exited;
  }

  /** Writes one message as a single line. Returns false when the process is gone. */
  send(message: JSONRPCMessage): boolean {
    if (this.#exited || this.#stopRequested || !this.#child.stdin.writable) return false;
    // JSON.stringify never emits a raw newline (it escapes them in strings), so one message is one line.
    this.#child.stdin.write(`${JSON.stringify(message)}\n`);
    return true;
  }

  /**
   * Stops the process and everything in its process group: stdin closed, then SIGTERM to the group
   * after a short wait, then SIGKILL to the group after `graceMs`. Resolves once the direct child has
   * exited and the group is empty (or SIGKILL was sent to what was left), with a debug log line
   * (`stdio.process_stopped`) that marks the end for whoever watches the logs.
   */
  async stop(graceMs: number): Promise<void> {
    this.#stopRequested = true;
    const pid = this.pid;
    this.#child.stdin.end();
    if (pid === undefined) return;
    // MCP Transports (stdio, Shutdown): closing stdin is the first, polite signal.
    let signal: NodeJS.Signals | undefined;
    if (!(await this.#waitForGroupExit(Math.min(1000, graceMs)))) {
      signal = 'SIGTERM';
      signalGroup(pid, signal);
      if (!(await this.#waitForGroupExit(graceMs))) {
        this.#options.logger.warn({ server: this.#options.name, pid }, 'stdio server did not stop after SIGTERM; sending SIGKILL');
        signal = 'SIGKILL';
        signalGroup(pid, signal);
        await this.#waitForGroupExit(2000);
      }
    }
    if (this.#options.logger.isLevelEnabled('debug')) {
      this.#options.logger.debug(
        { event: 'stdio.process_stopped', server: this.#options.name, userId: this.#options.userId, pid, signal },
        'stdio server process stopped',
      );
    }
  }

  /**
   * True when the direct child has exited and no process is left in its group within `ms`. Real
   * time, not the injected clock: this bounds a wait on another process, which no test clock speeds up.
   */
  async #waitForGroupExit(ms: number): Promise<boolean> {
    const deadline = performance.now() + ms;
    let timer: NodeJS.Timeout | undefined;
    const childGone = await Promise.race([
      this.#exitedPromise.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), ms);
      }),
    ]);
    clearTimeout(timer);
    if (!childGone) return false;
    while (groupAlive(this.pid!)) {
      if (performance.now() >= deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    return true;
  }

  #onStdout(chunk: Buffer): void {
    if (this.#overflowed) return;
    let start = 0;
    let index = chunk.indexOf(NEWLINE);
    while (index !== -1) {
      const piece = chunk.subarray(start, index);
      let line: Buffer;
      if (this.#stdoutParts.length > 0) {
        this.#stdoutParts.push(piece);
        line = Buffer.concat(this.#stdoutParts);
        this.#stdoutParts = [];
        this.#stdoutPartBytes = 0;
      } else {
        line = piece;
      }
      this.#onLine(line);
      start = index + 1;
      index = chunk.indexOf(NEWLINE, start);
    }
    // A message longer than one pipe read (64 KiB) arrives in parts; keep them until its newline.
    if (start < chunk.length) {
      this.#stdoutParts.push(chunk.subarray(start));
      this.#stdoutPartBytes += chunk.length - start;
      if (this.#stdoutPartBytes > (this.#options.maxMessageBytes ?? MAX_MESSAGE_BYTES)) this.#overflow();
    }
  }

  #overflow(): void {
    this.#overflowed = true;
    this.#options.logger.error(
      { event: 'stdio.message_too_large', server: this.#options.name, pid: this.pid, bytes: this.#stdoutPartBytes },
      'stdio server wrote a message over the size limit; killing it',
    );
    this.#stdoutParts = [];
    this.#stdoutPartBytes = 0;
    if (this.pid !== undefined) signalGroup(this.pid, 'SIGKILL');
  }

  #onLine(line: Buffer): void {
    const text = line.toString('utf8').trim();
    if (text === '') return;
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      // Some servers print banners on stdout; they are not protocol messages.
      this.#options.logger.warn({ server: this.#options.name, pid: this.pid, line: text.slice(0, 200) }, 'stdio server wrote a line that is not JSON; ignored');
      return;
    }
    if (!isJsonRpcMessage(message)) {
      this.#options.logger.warn({ server: this.#options.name, pid: this.pid }, 'stdio server wrote JSON that is not a JSON-RPC message; ignored');
      return;
    }
    try {
      this.#options.onMessage(message);
    } catch (error) {
      this.#options.logger.error({ server: this.#options.name, pid: this.pid, err: error }, 'stdio message handling failed');
    }
  }

  #onStderr(chunk: string): void {
    const text = this.#stderrPart + chunk;
    const lines = text.split('\n');
    this.#stderrPart = lines.pop() ?? '';
    if (this.#stderrPart.length > MAX_STDERR_LINE) {
      lines.push(this.#stderrPart);
      this.#stderrPart = '';
    }
    for (const line of lines) this.#logStderr(line);
  }

  #flushStderr(): void {
    if (this.#stderrPart !== '') this.#logStderr(this.#stderrPart);
    this.#stderrPart = '';
  }

  #logStderr(line: string): void {
    const trimmed = line.trimEnd();
    if (trimmed === '') return;
    this.#options.logger.info(
      { server: this.#options.name, pid: this.pid, userId: this.#options.userId, stream: 'stderr' },
      trimmed.length > MAX_STDERR_LINE ? `${trimmed.slice(0, MAX_STDERR_LINE)}…` : trimmed,
    );
  }
}

/** Sends `signal` to the process group led by `pid`; a group already gone is not an error. */
function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: nothing left in the group.
  }
}

/**
 * True while a live process of the group is left. Signal 0 checks existence, but also counts zombies:
 * an orphaned grandchild is re-parented to PID 1, which in a container may never reap it. On Linux
 * the group's members are therefore read from /proc and zombies (state Z) are not counted.
 */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  if (process.platform !== 'linux') return true;
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return true;
  }
  for (const entry of entries) {
    if (entry.charCodeAt(0) < 48 || entry.charCodeAt(0) > 57) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // "pid (comm) state ppid pgrp …"; comm may contain spaces and parentheses, so parse after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X') return true;
  }
  return false;
}
