/**
 * stdio MCP servers behind the gateway (docs/stdio.md): a supervisor for the processes and the bridge
 * that serves them as Streamable HTTP and HTTP+SSE, called by the gateway in-process.
 */

import { formatPath } from '../config/load/key-path.ts';
import { idpTokenTargetProblems } from '../config/schema/server-rules.ts';
import type { StdioUpstreamConfig } from '../config/schema/stdio.ts';
import type { ServerConfig } from '../config/schema.ts';
import type { Clock } from '../core/clock.ts';
import { ErrorCode, GatewayError } from '../core/errors.ts';
import type { IdpTokenSource } from '../idp/idp-tokens.ts';
import type { Logger } from '../observability/logger.ts';
import { type StdioBridge, startStdioBridge } from './bridge.ts';
import { StdioSupervisor } from './supervisor.ts';

export type { StdioBridge } from './bridge.ts';
export { BRIDGE_SECRET_HEADER, BRIDGE_USER_HEADER } from './bridge.ts';

export interface StdioServerDeps {
  logger: Logger;
  idpTokens: IdpTokenSource;
  /**
   * The one clock of the server's processes and sessions (the system clock by default): activity,
   * idle stops, restart backoff, IdP-token recycling. Tests move it instead of waiting.
   */
  clock?: Clock;
  /** Serve the bridge over loopback HTTP too (tests); the gateway hands requests over in-process. */
  listenOnLoopback?: boolean;
}

/** A running stdio server: its bridge (where the gateway proxies to) and its supervisor. */
export interface StdioServer extends StdioBridge {
  supervisor: StdioSupervisor;
}

/** Largest legacy `POST /messages` body the bridge reads when the server sets no smaller limit. */
const DEFAULT_MAX_BODY = 4 * 1024 * 1024;

/**
 * Starts the bridge for one configured stdio server. Processes start on first use, not here.
 * Throws (ERR_CONFIG_INVALID) for a configuration that cannot work (`idpToken.env` with a shared
 * process: one process cannot carry every user's token).
 */
export async function startStdioServer(server: ServerConfig, stdio: StdioUpstreamConfig, deps: StdioServerDeps): Promise<StdioServer> {
  // The schema's rule, for a server entry that did not come through it.
  const problems = idpTokenTargetProblems({ ...server, upstream: { stdio } });
  if (problems.length > 0) {
    throw new GatewayError(
      ErrorCode.CONFIG_INVALID,
      `server "${server.name}": ${problems.map((problem) => `${formatPath(problem.path)} ${problem.message}`).join('; ')}`,
    );
  }
  const idpTokenEnv = server.idpToken?.env;
  const logger = deps.logger;
  const supervisor = new StdioSupervisor({ name: server.name, config: stdio, idpTokenEnv, idpTokens: deps.idpTokens, logger, clock: deps.clock });
  const bridge = await startStdioBridge({
    name: server.name,
    supervisor,
    logger,
    sessionIdleTimeoutMs: stdio.sessionIdleTimeout * 1000,
    maxBodyBytes: Math.max(server.maxRequestBytes ?? DEFAULT_MAX_BODY, 1024),
    listenOnLoopback: deps.listenOnLoopback,
  });
  return Object.assign(bridge, { supervisor });
}
