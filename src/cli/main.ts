#!/usr/bin/env node
import { runAdmin } from './admin.ts';
import { USAGE_EXIT } from './args.ts';
/**
 * Command line: `serve` (default), `config check`, `config docs`, `config schema`, `hash-password`,
 * `keys list`, `keys rotate`, `admin …` (docs/admin.md).
 * Each command parses its own options strictly (./args.ts); a usage error exits with status 2.
 */
import { runConfigCheck } from './config-check.ts';
import { runConfigDocs, runConfigSchema } from './config-print.ts';
import { runHashPassword } from './hash-password.ts';
import { runKeys } from './keys.ts';
import { runServe } from './serve.ts';

const USAGE = `usage: mcp-oauth-gateway <command> [options]

commands:
  serve [--config FILE]          run the gateway (default; config also from MCP_GATEWAY_CONFIG)
  config check [--config FILE]   validate a configuration and list every problem
  config docs                    print the configuration reference (Markdown)
  config schema                  print the configuration's JSON Schema (for editors)
  hash-password                  read a password on stdin, print a hash for a local user
  keys list [--config FILE]      list the token-signing keys and their state (docs/keys.md)
  keys rotate [--config FILE]    publish the next signing key now (gateways may keep running)
  admin <command> [--json]       list clients, grants, users and keys; delete clients, revoke
                                 grants (gateways may keep running; admin --help, docs/admin.md)

--config FILE may also be written --config=FILE or -c FILE; every command takes --help.
`;

async function main(argv: string[]): Promise<number> {
  const io = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };
  const [command, ...rest] = argv;
  // No command, or options only: `serve` is the default.
  if (command === undefined || (command.startsWith('-') && command !== '--help' && command !== '-h')) return runServe(argv, io);
  switch (command) {
    case 'serve':
      return runServe(rest, io);
    case 'config': {
      const [sub, ...args] = rest;
      if (sub === 'check') return runConfigCheck(args, io);
      if (sub === 'docs') return runConfigDocs(args, io);
      if (sub === 'schema') return runConfigSchema(args, io);
      io.stderr.write(`${sub === undefined ? 'config needs a subcommand' : `unknown config subcommand "${sub}"`}\n\n${USAGE}`);
      return USAGE_EXIT;
    }
    case 'hash-password':
      return runHashPassword(rest, io);
    case 'keys':
      return runKeys(rest, io);
    case 'admin':
      return runAdmin(rest, io);
    case '--help':
    case '-h':
    case 'help':
      io.stdout.write(USAGE);
      return 0;
    default:
      io.stderr.write(`unknown command "${command}"\n\n${USAGE}`);
      return USAGE_EXIT;
  }
}

// `config schema | head` closes the pipe early; that is the reader's choice, not a failure to report
// with a stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`mcp-oauth-gateway: ${(error as Error).message ?? String(error)}\n`);
    process.exitCode = 1;
  },
);
