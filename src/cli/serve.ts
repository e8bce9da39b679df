/**
 * `serve`: load the configuration, start the gateway, stop cleanly on SIGTERM/SIGINT: the drain
 * (src/app.ts, docs/operations.md) lets requests in flight finish within `shutdown.drainSeconds`,
 * then the logs are flushed and the process exits 0. Should closing hang past the drain period, the
 * process exits 1 rather than outlive the orchestrator's patience silently.
 */
import type { Readable, Writable } from 'node:stream';
import { startGateway } from '../app.ts';
import { ConfigError, formatConfigError, loadConfig } from '../config/load.ts';
import type { GatewayConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import { configPathArgument } from './args.ts';
import { isClusterWorker, leaveCluster, onPrimaryShutdown, runPrimary } from './workers.ts';

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
  const drainMs = config.shutdown.drainSeconds * 1000;
  return new Promise<number>((resolve) => {
    let stopping = false;
    // Signals received: under `workers: N` the primary's request (a message, not a signal) may come
    // first or after the Ctrl-C that reached this worker too; only a second signal forces the exit.
    let signals = 0;
    const stop = (signal: string) => {
      if (signal !== 'primary') signals++;
      if (stopping) {
        if (signals < 2) return;
        // A second signal: the operator does not want to wait for the drain.
        gateway.logger.warn({ event: 'shutdown.forced', signal }, 'second signal during the drain; exiting now');
        flushLogs(gateway.logger).then(() => process.exit(1));
        return;
      }
      stopping = true;
      gateway.logger.info({ event: 'shutdown.started', signal, drainSeconds: config.shutdown.drainSeconds }, 'shutting down');
      const overdue = setTimeout(() => {
        gateway.logger.error({ event: 'shutdown.overdue' }, 'shutdown did not finish within the drain period; exiting');
        flushLogs(gateway.logger).then(() => process.exit(1));
      }, drainMs + 1_000);
      overdue.unref();
      gateway
        .drain()
        .catch((error: unknown) => gateway.logger.error({ err: error }, 'shutdown failed'))
        .then(() => flushLogs(gateway.logger))
        .then(() => {
          leaveCluster();
          resolve(0);
        });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    // Under `workers: N` the primary asks by message, not by signal: a Ctrl-C reaches the worker too
    // (same process group), and a forwarded signal would then count as the second, forcing signal.
    onPrimaryShutdown(() => stop('primary'));
  });
}

/** pino writes asynchronously: the last lines (the shutdown's own) must reach stdout before exit. */
function flushLogs(logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 1_000);
    timer.unref();
    try {
      logger.flush(() => {
        clearTimeout(timer);
        resolve();
      });
    } catch {
      resolve();
    }
  });
}
