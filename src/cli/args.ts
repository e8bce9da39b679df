/**
 * Argument parsing for every command: `node:util` `parseArgs` in strict mode, so `--config FILE`,
 * `--config=FILE` and `-c FILE` all work and anything else (an unknown or mistyped flag, a missing
 * value, a stray argument) is a usage error (exit status 2) naming what was wrong.
 */

import type { Writable } from 'node:stream';
import { type ParseArgsOptionsConfig, parseArgs } from 'node:util';
import { closestName } from '../config/load/closest-name.ts';
import { ErrorCode, GatewayError } from '../core/errors.ts';

/** A command line the command cannot run with; the CLI prints the message and the usage, exit 2. */
export class UsageError extends GatewayError {
  constructor(message: string) {
    super(ErrorCode.CLI_USAGE, message);
    this.name = 'UsageError';
  }
}

/** Exit status for a usage error (the convention of getopt-based tools). */
export const USAGE_EXIT = 2;

export const HELP_OPTION = { help: { type: 'boolean', short: 'h' } } as const satisfies ParseArgsOptionsConfig;

export interface ParseOptions<T extends ParseArgsOptionsConfig> {
  options: T;
  /** Message for an argument that is no option; default `unexpected argument "<it>"`. */
  positional?: (value: string) => string;
}

/** The options' values; throws UsageError for anything strict parsing refuses. */
export function parseCommandArgs<T extends ParseArgsOptionsConfig>(args: string[], { options, positional }: ParseOptions<T>) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    if (!isParseArgsError(error)) throw error;
    throw new UsageError(describeRefusal(args, options, positional) ?? error.message);
  }
}

/**
 * Options plus named positional arguments (`admin clients delete <client_id>`): each name in
 * `positionals` is required, and anything beyond them is a usage error like an unknown option.
 */
export function parseCommandLine<T extends ParseArgsOptionsConfig>(args: string[], options: T, positionals: readonly string[]) {
  let parsed: ReturnType<typeof parseArgs<{ args: string[]; options: T; strict: true; allowPositionals: true }>>;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: true });
  } catch (error) {
    if (!isParseArgsError(error)) throw error;
    throw new UsageError(describeRefusal(args, options, undefined, positionals.length) ?? error.message);
  }
  const extra = parsed.positionals[positionals.length];
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
  const missing = positionals[parsed.positionals.length];
  // --help needs no operands: the caller answers it before looking at them.
  if (missing !== undefined && !(parsed.values as { help?: boolean }).help) throw new UsageError(`${missing} is missing`);
  return { values: parsed.values, positionals: parsed.positionals };
}

function isParseArgsError(error: unknown): error is Error {
  const code = (error as { code?: unknown } | null)?.code;
  return error instanceof Error && typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}

/**
 * Says which argument strict parsing refused. Node's own message is long and suggests `--`; the
 * tokens of a lenient parse name the argument exactly. Option values are never repeated (one may be a
 * secret typed in the wrong place), only the flag's name.
 */
function describeRefusal(args: string[], options: ParseArgsOptionsConfig, positional?: (value: string) => string, allowedPositionals = 0): string | undefined {
  const { tokens } = parseArgs({ args, options, strict: false, allowPositionals: true, tokens: true });
  let positionals = 0;
  for (const token of tokens) {
    if (token.kind === 'positional' && ++positionals <= allowedPositionals) continue;
    if (token.kind === 'positional') return positional ? positional(token.value) : `unexpected argument "${token.value}"`;
    if (token.kind !== 'option') continue;
    const option = options[token.name];
    if (!option) return `unknown option ${token.rawName}${suggestion(token.name, options)}`;
    if (option.type === 'string' && token.value === undefined) return `${token.rawName} needs a value`;
    if (option.type === 'boolean' && token.inlineValue) return `${token.rawName} takes no value`;
  }
  return undefined;
}

/** ` (did you mean --config?)` for a flag that is a known one misspelt. */
function suggestion(name: string, options: ParseArgsOptionsConfig): string {
  const close = closestName(name, Object.keys(options));
  return close ? ` (did you mean --${close}?)` : '';
}

/** Writes a usage error the way every command does: the problem, a blank line, the usage. */
export function reportUsageError(error: UsageError, usage: string, stderr: Writable): number {
  stderr.write(`${error.message}\n\n${usage}`);
  return USAGE_EXIT;
}

const CONFIG_OPTIONS = { config: { type: 'string', short: 'c' }, ...HELP_OPTION } as const satisfies ParseArgsOptionsConfig;

/**
 * The arguments of a command that takes only `--config FILE` (and `--help`): the file path, or the
 * exit status when the command already answered (its usage for `--help`, a usage error otherwise).
 */
export function configPathArgument(args: string[], usage: string, io: { stdout: Writable; stderr: Writable }): { path: string | undefined } | { exit: number } {
  try {
    const values = parseCommandArgs(args, { options: CONFIG_OPTIONS });
    if (!values.help) return { path: values.config };
    io.stdout.write(usage);
    return { exit: 0 };
  } catch (error) {
    if (error instanceof UsageError) return { exit: reportUsageError(error, usage, io.stderr) };
    throw error;
  }
}
