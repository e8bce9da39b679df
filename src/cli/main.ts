#!/usr/bin/env node
/**
 * Command line: `serve` (default), `config check`, `config docs`, `hash-password`.
 */
import { runConfigCheck } from './config-check.ts';
import { runHashPassword } from './hash-password.ts';
import { runServe } from './serve.ts';
import { configReference } from '../config/docs.ts';

const USAGE = `usage: mcp-oauth-gateway <command> [options]

commands:
  serve [--config FILE]          run the gateway (default; config also from MCP_GATEWAY_CONFIG)
  config check [--config FILE]   validate a configuration and list every problem
  config docs                    print the configuration reference (Markdown)
  hash-password                  read a password on stdin, print a hash for a local user
`;

async function main(argv: string[]): Promise<number> {
  const io = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };
  const [command = 'serve', ...rest] = argv;
  switch (command) {
    case 'serve':
      return runServe(rest, io);
    case 'config': {
      const [sub, ...args] = rest;
      if (sub === 'check') return runConfigCheck(args, io);
      if (sub === 'docs') {
        io.stdout.write(configReference());
        return 0;
      }
      io.stderr.write(USAGE);
      return 2;
    }
    case 'hash-password':
      return runHashPassword(rest, io);
    case '--help':
    case '-h':
    case 'help':
      io.stdout.write(USAGE);
      return 0;
    default:
      io.stderr.write(`unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`mcp-oauth-gateway: ${(error as Error).message ?? String(error)}\n`);
    process.exitCode = 1;
  },
);
