/**
 * The connection to Redis: client options chosen so that a request never hangs on it, and the one
 * place that decides which failures mean "Redis is unavailable" (answered 503, retried later) and
 * which are bugs.
 *
 * Client: `@redis/client` (node-redis, the client Redis itself maintains), without the `redis` meta
 * package's modules. It has no dependencies, is released with each Redis version, speaks TLS
 * (`rediss://`) through node:tls, reconnects by itself with a strategy we choose, and has the two
 * switches a gateway needs: `disableOfflineQueue` (while disconnected a command fails at once instead of
 * waiting in an unbounded queue) and a per-command abort signal (a command sent to a Redis that stopped
 * answering fails after `commandTimeoutMs`: the deadline is RedisStorage's, src/storage/redis.ts). ioredis is in maintenance only and iovalkey is its young
 * fork; both queue offline commands by default.
 */
import type { RedisClientOptions, RedisFunctions, RedisModules, RedisScripts } from '@redis/client';
import { createClient, ErrorReply } from '@redis/client';
import { ErrorCode, GatewayError } from '../core/errors.ts';

export interface RedisConnectionOptions {
  /** `redis://host:port[/db]` or `rediss://…` (TLS). A password here is used but never printed. */
  url: string;
  username?: string;
  password?: string;
  /** PEM text of the CA(s) that signed the server's certificate, for `rediss://` with a private CA. */
  tlsCa?: string;
  /** Time allowed for one connection attempt (TCP + TLS + AUTH), in milliseconds. */
  connectTimeoutMs: number;
  /** Time allowed for one command's answer, in milliseconds. */
  commandTimeoutMs: number;
}

/** The longest pause between reconnection attempts once the gateway has been connected. */
const MAX_RECONNECT_DELAY_MS = 1000;

/**
 * Error replies that say "not now" rather than "wrong request": the server is loading its data after a
 * restart, is a read-only replica after a failover, cannot persist (MISCONF), is out of memory under
 * `noeviction` (OOM), is busy with a script, or refuses our credentials (rotated password).
 */
const UNAVAILABLE_REPLY = /^(LOADING|READONLY|MISCONF|OOM|BUSY|MASTERDOWN|NOREPLICAS|TRYAGAIN|CLUSTERDOWN|NOAUTH|WRONGPASS)\b/;

/**
 * The URL as it may be printed: scheme, host, port and database, never the user info. Used in every
 * message about the connection, so a password put in the URL cannot reach a log or an error page.
 */
export function redactedRedisUrl(url: string): string {
  const parsed = URL.parse(url);
  if (!parsed) return '(an invalid Redis URL)';
  return `${parsed.protocol}//${parsed.host}${parsed.pathname === '/' ? '' : parsed.pathname}`;
}

/**
 * Client options from the gateway's settings. `everReady` tells the reconnect strategy whether the
 * gateway has been connected once: at start-up a failed attempt is final (the CLI reports it and exits,
 * so a misconfigured replica does not sit silently retrying); after that it retries for as long as it
 * takes, with a short capped back-off, because a Redis restart must not need a gateway restart.
 */
export function clientOptions(options: RedisConnectionOptions, everReady: () => boolean): RedisClientOptions<RedisModules, RedisFunctions, RedisScripts, 2> {
  const url = new URL(options.url);
  const tls = url.protocol === 'rediss:';
  const database = url.pathname.length > 1 ? Number(url.pathname.slice(1)) : undefined;
  const reconnectStrategy = (retries: number, cause: Error): number | Error => {
    if (!everReady()) return cause;
    const jitter = Math.floor(Math.random() * 100);
    return Math.min(50 * 2 ** retries, MAX_RECONNECT_DELAY_MS) + jitter;
  };
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === '' ? 6379 : Number(url.port);
  const common = { host, port, connectTimeout: options.connectTimeoutMs, reconnectStrategy };
  return {
    socket: tls ? { ...common, tls: true, servername: host, ...(options.tlsCa ? { ca: options.tlsCa } : {}) } : common,
    username: options.username ?? (url.username === '' ? undefined : decodeURIComponent(url.username)),
    password: options.password ?? (url.password === '' ? undefined : decodeURIComponent(url.password)),
    ...(database !== undefined && Number.isSafeInteger(database) ? { database } : {}),
    // RESP2: plain arrays for HGETALL and SCAN, understood by every Redis since 2.x and by Valkey.
    RESP: 2,
    disableOfflineQueue: true,
    // node-redis's own timeout off (0; its default is on): it arms an AbortSignal.timeout per command
    // that is never cleared, so every command later fires a timer and builds a DOMException (with its
    // stack), about 10% of the gateway's CPU on a refresh. RedisStorage's own deadline (redis.ts)
    // covers the whole round trip and withdraws a command not yet written.
    commandOptions: { timeout: 0 },
  };
}

/** A client for the options, not yet connected. */
export function createRedisClient(options: RedisConnectionOptions, everReady: () => boolean) {
  return createClient(clientOptions(options, everReady));
}

export type RedisClient = ReturnType<typeof createRedisClient>;

/**
 * What a failed command becomes. Connection-level failures (offline, timed out, socket closed) and the
 * "not now" replies become ERR_STORAGE_UNAVAILABLE, which the HTTP layer answers with 503; other error
 * replies are returned as they are (a bug or a foreign key, not an outage).
 */
export function classifyRedisError(error: unknown): unknown {
  if (error instanceof ErrorReply) {
    if (!UNAVAILABLE_REPLY.test(error.message)) return error;
  }
  const reason = error instanceof Error ? error.message : String(error);
  return new GatewayError(ErrorCode.STORAGE_UNAVAILABLE, `Redis is unavailable: ${reason}`, { cause: error });
}

/**
 * What is wrong with the server's settings for the gateway's data (docs/storage.md): no append-only
 * file (a restart loses every grant since the last snapshot) or an eviction policy other than
 * `noeviction` (a full Redis would silently drop grants and keys). Best effort: a server that refuses
 * INFO (an ACL without it, a managed service) yields nothing.
 */
export async function settingsWarnings(send: (args: string[]) => Promise<unknown>): Promise<string[]> {
  const field = (info: unknown, name: string): string | undefined =>
    typeof info === 'string' ? new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim() : undefined;
  const warnings: string[] = [];
  try {
    const aof = field(await send(['INFO', 'persistence']), 'aof_enabled');
    if (aof === '0') {
      warnings.push('Redis runs without appendonly: a Redis restart loses every grant, refresh token and client since the last snapshot');
    }
    const policy = field(await send(['INFO', 'memory']), 'maxmemory_policy');
    if (policy !== undefined && policy !== 'noeviction') {
      warnings.push(`Redis maxmemory-policy is ${policy}: a full Redis would silently evict grants and keys; use noeviction`);
    }
  } catch {
    // INFO refused: nothing to say.
  }
  return warnings;
}
