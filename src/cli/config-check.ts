/**
 * `config check [--config FILE]`: loads the configuration exactly as `serve` would (file, environment,
 * defaults) and prints a one-line summary or every problem. Nothing it prints contains a secret value:
 * the summary has only counts and the issuer, and ConfigError messages are scrubbed by the loader.
 */
import type { Readable, Writable } from 'node:stream';
import { ConfigError, formatConfigError, loadConfig } from '../config/load.ts';
import { configPathArgument } from './args.ts';

export interface ConfigCheckIo {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  /** Defaults to process.env. */
  env?: Record<string, string | undefined>;
}

const USAGE = `usage: mcp-oauth-gateway config check [--config FILE | --config=FILE | -c FILE]

Validates the configuration (FILE, else $MCP_GATEWAY_CONFIG, plus MCP_GATEWAY_* variables) and lists
every problem. Exit status 0 when valid, 1 when not.
`;

export async function runConfigCheck(args: string[], io: ConfigCheckIo): Promise<number> {
  const parsed = configPathArgument(args, USAGE, io);
  if ('exit' in parsed) return parsed.exit;
  const { path } = parsed;

  try {
    const config = await loadConfig({ path, env: io.env ?? process.env });
    const servers = config.servers?.length ?? 0;
    const providers = config.identityProviders?.length ?? 0;
    io.stdout.write(`config ok: ${plural(servers, 'server')}, ${plural(providers, 'identity provider')}, issuer ${config.publicUrl}\n`);
    // What the gateway substitutes for missing lists, so a "0" is not mistaken for a broken file.
    if (servers === 0) io.stdout.write('  note: no servers configured; the built-in demo MCP server will be served\n');
    if (providers === 0) io.stdout.write('  note: no identity providers configured; a demo local account will be created at first start\n');
    return 0;
  } catch (error) {
    if (error instanceof ConfigError) {
      io.stderr.write(`${formatConfigError(error)}\n`);
      return 1;
    }
    throw error;
  }
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}
