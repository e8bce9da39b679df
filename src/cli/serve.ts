/** `serve`: load the configuration, start the gateway, stop cleanly on SIGTERM/SIGINT. */
import type { Readable, Writable } from 'node:stream';
import { startGateway } from '../app.ts';
import { ConfigError, formatConfigError, loadConfig } from '../config/load.ts';
import type { GatewayConfig } from '../config/schema.ts';
import { configPathArgument } from './args.ts';
import { isClusterWorker, leaveCluster, runPrimary } from './workers.ts';

const USAGE = `usage: mcp-oauth-gateway serve [--config FILE | --config=FILE | -c FILE]

Runs the gateway with the configuration FILE (else $MCP_GATEWAY_CONFIG), plus MCP_GATEWAY_* variables.
`;

export async function runServe(args: string[], io: { stdin: Readable; stdout: Writable; stderr: Writable }): Promise<number> {
  const parsed = configPathArgument(args, USAGE, io);
  if ('exit' in parsed) return parsed.exit;
  const { path } = parsed;
  let config: GatewayConfig;
  try {
    config = await loadConfig({ path });
  } catch (error) {
    if (error instanceof ConfigError) {
      io.stderr.write(`${formatConfigError(error)}\n`);
      return 1;
    }
    throw error;
  }
  // `workers: N`: this process only supervises N copies of itself (workers.ts).
  if (config.workers > 1 && !isClusterWorker()) return runPrimary(config.workers, io);
  const gateway = await startGateway(config, { announce: (line) => io.stdout.write(`${line}\n`) });
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      gateway.logger.info({ signal }, 'shutting down');
      gateway.close().then(resolve, resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  leaveCluster();
  return 0;
}
