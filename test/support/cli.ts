/**
 * The gateway's command line for tests, two ways: `runCli()` spawns `src/cli/main.ts` as a separate
 * process, as an operator runs it; `capturedIo()` gives in-memory streams for calling a command's
 * `run…()` function in process and reading back what it printed.
 *
 *   const run = await runCli('admin', 'clients', 'list', '-c', configFile);
 *   assert.equal(run.status, 0, run.stderr);
 *
 *   const io = capturedIo('password\n');
 *   assert.equal(await runHashPassword([], io), 0);
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';

/** The CLI entry point, for tests that spawn it with arguments of their own. */
export const CLI_MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/** The environment without MCP_GATEWAY_* overrides, so only the config file configures the command. */
export function envWithoutGatewayOverrides(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('MCP_GATEWAY_')));
}

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI in a child process (no stdin, no MCP_GATEWAY_* variables) and waits for it to exit. */
export async function runCli(...args: string[]): Promise<CliRun> {
  const child = spawn(process.execPath, [CLI_MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: envWithoutGatewayOverrides() });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [status] = (await once(child, 'close')) as [number | null];
  return { status, stdout, stderr };
}

export interface CapturedIo {
  stdin: PassThrough;
  stdout: PassThrough;
  stderr: PassThrough;
  /** Everything written to stdout so far. */
  out(): string;
  /** Everything written to stderr so far. */
  err(): string;
}

/** In-memory stdin/stdout/stderr for a command run in process; `input`, when given, is stdin's whole content. */
export function capturedIo(input?: string): CapturedIo {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  if (input !== undefined) stdin.end(input);
  return { stdin, stdout, stderr, out: () => out, err: () => err };
}
