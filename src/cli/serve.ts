/** `serve`: load the configuration, start the gateway, stop cleanly on SIGTERM/SIGINT. */
import type { Readable, Writable } from 'node:stream';
import { loadConfig } from '../config/load.ts';
import { ConfigError, formatConfigError } from '../config/load.ts';
import { startGateway } from '../app.ts';

export async function runServe(args: string[], io: { stdin: Readable; stdout: Writable; stderr: Writable }): Promise<number> {
  const flag = args.indexOf('--config');
  const path = flag >= 0 ? args[flag + 1] : undefined;
  let config;
  try {
    config = await loadConfig({ path });
  } catch (error) {
    if (error instanceof ConfigError) {
      io.stderr.write(`${formatConfigError(error)}\n`);
      return 1;
    }
    throw error;
  }
  const gateway = await startGateway(config, { announce: (line) => io.stdout.write(`${line}\n`) });
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      gateway.logger.info({ signal }, 'shutting down');
      gateway.close().then(resolve, resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  return 0;
}
