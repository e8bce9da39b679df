/**
 * `hash-password`: reads a password on standard input and prints its hash for a local user's
 * `passwordHash`. The password never comes from the command line, where the process list and shell
 * history would keep it.
 *
 *   printf '%s\n' "$PASSWORD" | mcp-oauth-gateway hash-password     (scripts: first line of stdin)
 *   mcp-oauth-gateway hash-password                                 (terminal: asks twice, no echo)
 */
import type { Readable, Writable } from 'node:stream';
import { ErrorCode, GatewayError } from '../core/errors.ts';
import { hashPassword } from '../idp/passwords.ts';
import { HELP_OPTION, parseCommandArgs, reportUsageError, UsageError } from './args.ts';

export interface CliIo {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
}

const USAGE = `usage: mcp-oauth-gateway hash-password

Reads one password from standard input (the first line; a terminal is asked twice without echo) and
prints a hash for identityProviders[].users[].passwordHash.
`;

/** A password line longer than this is a mistake (a file piped in), not a password. */
const MAX_PASSWORD_BYTES = 4096;
const RECOMMENDED_LENGTH = 12;

export async function runHashPassword(args: string[], io: CliIo): Promise<number> {
  try {
    const values = parseCommandArgs(args, {
      options: HELP_OPTION,
      // The argument is most likely the password: never echo it.
      positional: () =>
        'hash-password takes no arguments: the password is read from standard input, never from the command line (it would show in the process list and shell history).',
    });
    if (values.help) {
      io.stdout.write(USAGE);
      return 0;
    }
  } catch (error) {
    if (error instanceof UsageError) return reportUsageError(error, USAGE, io.stderr);
    throw error;
  }

  let password: string | undefined;
  try {
    const stdin = io.stdin;
    password = isTerminal(stdin) ? await promptTwice(stdin, io.stderr) : await readLine(stdin);
  } catch (error) {
    io.stderr.write(`hash-password: ${(error as Error).message}\n`);
    return 1;
  }
  if (password === undefined || password === '') {
    io.stderr.write('hash-password: no password given on standard input\n');
    return 1;
  }
  if ([...password].length < RECOMMENDED_LENGTH) {
    io.stderr.write(`warning: this password is shorter than ${RECOMMENDED_LENGTH} characters\n`);
  }
  io.stdout.write(`${await hashPassword(password)}\n`);
  return 0;
}

type TerminalInput = Readable & { isTTY?: boolean; setRawMode: (mode: boolean) => unknown };

function isTerminal(stdin: Readable): stdin is TerminalInput {
  const input = stdin as Partial<TerminalInput>;
  return input.isTTY === true && typeof input.setRawMode === 'function';
}

/** The first line of a pipe (without its line ending); undefined when the input is empty. */
export function readLine(stdin: Readable): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const finish = (line: string | undefined): void => {
      cleanup();
      release(stdin);
      resolve(line?.replace(/\r$/, ''));
    };
    const onData = (chunk: string): void => {
      buffered += chunk;
      const newline = buffered.indexOf('\n');
      const line = newline >= 0 ? buffered.slice(0, newline) : buffered;
      // The limit holds whether the line ended in this chunk or is still coming.
      if (Buffer.byteLength(line) > MAX_PASSWORD_BYTES)
        fail(new GatewayError(ErrorCode.CLI_INPUT, 'the first line of standard input is too long to be a password'));
      else if (newline >= 0) finish(line);
    };
    const onEnd = (): void => finish(buffered === '' ? undefined : buffered);
    const fail = (error: Error): void => {
      cleanup();
      release(stdin);
      reject(error);
    };
    const cleanup = (): void => {
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.off('error', fail);
    };
    hold(stdin);
    stdin.setEncoding('utf8');
    stdin.on('data', onData);
    stdin.once('end', onEnd);
    stdin.once('error', fail);
    stdin.resume();
  });
}

/** Undoes `release`: a previous read may have unref'd the handle, and an unref'd wait would let the process exit. */
function hold(stdin: Readable): void {
  (stdin as Readable & { ref?: () => void }).ref?.();
}

/**
 * Stops reading without closing: the caller owns the stream. A paused pipe still holds the event loop
 * open (a writer that never closes would hang the command), so the handle is also unref'd.
 */
function release(stdin: Readable): void {
  stdin.pause();
  (stdin as Readable & { unref?: () => void }).unref?.();
}

async function promptTwice(stdin: TerminalInput, stderr: Writable): Promise<string | undefined> {
  const first = await promptHidden(stdin, stderr, 'Password: ');
  if (!first) return first;
  const second = await promptHidden(stdin, stderr, 'Repeat password: ');
  if (first !== second) throw new GatewayError(ErrorCode.CLI_INPUT, 'the two passwords differ');
  return first;
}

/** Reads a line from a terminal in raw mode, echoing nothing. */
function promptHidden(stdin: TerminalInput, stderr: Writable, prompt: string): Promise<string | undefined> {
  // Raw mode before the prompt: once the prompt is visible the user may type, and the terminal would
  // echo anything typed before raw mode was on.
  hold(stdin);
  stdin.setEncoding('utf8');
  stdin.setRawMode(true);
  stderr.write(prompt);
  return new Promise((resolve, reject) => {
    let chars: string[] = [];
    const done = (error: Error | undefined, value?: string): void => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      release(stdin);
      stderr.write('\n');
      if (error) reject(error);
      else resolve(value);
    };
    const onData = (chunk: string): void => {
      for (const char of chunk) {
        if (char === '\r' || char === '\n') {
          done(undefined, chars.join(''));
          return;
        }
        if (char === '\u0003') {
          done(new GatewayError(ErrorCode.CLI_INPUT, 'cancelled')); // Ctrl-C
          return;
        }
        if (char === '\u0004') {
          done(undefined, chars.length > 0 ? chars.join('') : undefined); // Ctrl-D
          return;
        }
        if (char === '\u007f' || char === '\b') chars = chars.slice(0, -1);
        else if (char === '\u0015')
          chars = []; // Ctrl-U
        else if (char >= ' ') chars.push(char);
      }
    };
    stdin.on('data', onData);
    stdin.resume();
  });
}
