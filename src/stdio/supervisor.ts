/**
 * The processes of one configured stdio server: one shared connection, or one per user (per-user
 * mode), with the idle timeout, the cap on running processes, and each process's environment
 * (inherited baseline + configured `env` + the user's IdP token when `idpToken.env` asks for it).
 */
import type { StdioUpstreamConfig } from '../config/schema/stdio.ts';
import { type Clock, systemClock } from '../core/clock.ts';
import { ErrorCode } from '../core/errors.ts';
import { JsonRpcCode, JsonRpcFailure } from '../core/jsonrpc.ts';
import { IdpReauthenticationRequired, type IdpTokenSource } from '../idp/idp-tokens.ts';
import type { Logger } from '../observability/logger.ts';
import { type ProcessLauncher, StdioServerConnection } from './connection.ts';
import type { SpawnSpec } from './process.ts';

export interface SupervisorOptions {
  name: string;
  config: StdioUpstreamConfig;
  /** Environment variable for the user's IdP access token (per-user mode only). */
  idpTokenEnv?: string;
  idpTokens: IdpTokenSource;
  logger: Logger;
  /**
   * The one clock of this server's processes and sessions (the system clock by default): activity
   * stamps, idle stops, restart backoff and IdP-token recycling all read it, so a test moves it
   * instead of waiting.
   */
  clock?: Clock;
}

/** The shared connection's key; user ids always contain `:` (`<provider>:<subject>`), so never collide. */
const SHARED = '';

export class StdioSupervisor {
  /** The clock every connection, session and sweep of this server reads. */
  readonly clock: Clock;
  readonly #options: SupervisorOptions;
  readonly #connections = new Map<string, StdioServerConnection>();
  readonly #sweeper: NodeJS.Timeout;
  #running = 0;
  #closed = false;
  /** The sweep running or queued last; sweeps run one after another (a stop can outlast the interval). */
  #sweeping: Promise<void> = Promise.resolve();
  #sweepsWaiting = 0;

  constructor(options: SupervisorOptions) {
    this.#options = options;
    this.clock = options.clock ?? systemClock;
    const idleMs = options.config.idleTimeout * 1000;
    // Check often enough that a process stops within ~1.25 idle timeouts, never more than every 30 s.
    // A tick while a sweep is still stopping processes is skipped rather than queued behind it.
    this.#sweeper = setInterval(
      () => {
        if (this.#sweepsWaiting === 0) void this.sweepIdle();
      },
      Math.max(250, Math.min(30_000, idleMs / 4)),
    );
    this.#sweeper.unref();
  }

  get perUser(): boolean {
    return this.#options.config.mode === 'per-user';
  }

  /** The connection serving `userId` (the shared one in shared mode), created on first use. */
  connectionFor(userId: string): StdioServerConnection {
    if (this.#closed) throw new JsonRpcFailure(ErrorCode.STDIO_SHUTTING_DOWN, JsonRpcCode.SERVER_UNAVAILABLE, 'The gateway is shutting down.');
    const key = this.perUser ? userId : SHARED;
    let connection = this.#connections.get(key);
    if (!connection) {
      connection = this.#create(key);
      this.#connections.set(key, connection);
    }
    return connection;
  }

  /** Pids of running processes by user id (`''` for the shared process); for tests and diagnostics. */
  pids(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [key, connection] of this.#connections) if (connection.pid !== undefined) out.set(key, connection.pid);
    return out;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#sweeper);
    const all = [...this.#connections.values()];
    this.#connections.clear();
    await Promise.all(all.map((connection) => connection.close()));
  }

  #create(key: string): StdioServerConnection {
    const { config, name, logger } = this.#options;
    const userId = key === SHARED ? undefined : key;
    const launcher: ProcessLauncher = {
      spawnSpec: () => this.#spawnSpec(userId),
      acquireSlot: () => {
        if (this.perUser && this.#running >= config.maxProcesses) {
          logger.warn({ event: 'stdio.process_cap_reached', server: name, userId, maxProcesses: config.maxProcesses }, 'per-user process cap reached');
          throw new JsonRpcFailure(
            ErrorCode.STDIO_PROCESS_LIMIT,
            JsonRpcCode.TOO_MANY_PROCESSES,
            `MCP server "${name}" is at its limit of ${config.maxProcesses} running processes; try again later`,
          );
        }
        this.#running++;
      },
      releaseSlot: () => {
        this.#running--;
      },
    };
    return new StdioServerConnection({
      name,
      userId,
      logger,
      launcher,
      startTimeoutMs: config.startTimeout * 1000,
      stopGraceMs: config.stopGracePeriod * 1000,
      backoff: config.restartBackoff,
      recycleBeforeExpiryMs: config.recycleBeforeExpiry * 1000,
      clock: this.clock,
    });
  }

  async #spawnSpec(userId: string | undefined): Promise<{ spec: SpawnSpec; tokenExpiresAt?: number }> {
    const { config } = this.#options;
    const env: Record<string, string> = {};
    for (const name of config.inheritEnv) {
      const value = process.env[name];
      if (value !== undefined) env[name] = value;
    }
    Object.assign(env, config.env);
    let tokenExpiresAt: number | undefined;
    const tokenEnv = this.#options.idpTokenEnv;
    if (tokenEnv !== undefined && userId !== undefined) {
      // Ask for a token that outlives the recycle margin by a minute, so a new process is not
      // recycled again at once (an IdP issuing shorter tokens still gets one fresh token here).
      const token = await this.#tokenFor(userId, config.recycleBeforeExpiry + 60);
      env[tokenEnv] = token.accessToken;
      tokenExpiresAt = token.expiresAt;
    }
    return { spec: { command: config.command, args: config.args, env, cwd: config.cwd }, tokenExpiresAt };
  }

  async #tokenFor(userId: string, minValidity: number): Promise<{ accessToken: string; expiresAt?: number }> {
    try {
      return await this.#options.idpTokens.accessTokenFor(userId, minValidity);
    } catch (error) {
      this.#options.logger.warn(
        { event: 'stdio.idp_token_unavailable', server: this.#options.name, userId, err: error },
        'no IdP token for the stdio server process',
      );
      if (error instanceof IdpReauthenticationRequired) {
        throw new JsonRpcFailure(
          ErrorCode.STDIO_IDP_TOKEN_UNAVAILABLE,
          JsonRpcCode.IDP_TOKEN_UNAVAILABLE,
          'Your identity provider session has expired; sign in to the gateway again.',
        );
      }
      throw new JsonRpcFailure(
        ErrorCode.STDIO_IDP_TOKEN_UNAVAILABLE,
        JsonRpcCode.IDP_TOKEN_UNAVAILABLE,
        'The identity provider could not be reached for your token; try again later.',
      );
    }
  }

  /**
   * Per-user mode: stops each process idle for `idleTimeout` by the clock, and forgets connections
   * nobody uses. The interval timer calls it; a test calls it after moving the clock. Resolves once
   * this sweep (and any before it) has finished stopping what it stops.
   */
  sweepIdle(): Promise<void> {
    this.#sweepsWaiting++;
    const run = this.#sweeping.then(() => this.#sweep()).finally(() => this.#sweepsWaiting--);
    // A failed sweep is logged and must not block the ones after it.
    this.#sweeping = run.catch((error: unknown) => this.#options.logger.error({ err: error, server: this.#options.name }, 'stdio idle sweep failed'));
    return this.#sweeping;
  }

  async #sweep(): Promise<void> {
    if (!this.perUser || this.#closed) return;
    const cutoff = this.clock.now() - this.#options.config.idleTimeout * 1000;
    for (const [key, connection] of this.#connections) {
      if (connection.running && connection.lastActivity <= cutoff) await connection.stopIfQuiet();
      // Nobody attached and nothing running: forget it (a returning user starts afresh).
      if (!connection.running && connection.sessions.size === 0 && connection.quiet) {
        this.#connections.delete(key);
        await connection.close();
      }
    }
  }
}
