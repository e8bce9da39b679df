/** Picks the storage backend the configuration asks for, and keeps expired entries from piling up. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { GatewayConfig, RedisStorageConfig } from '../config/schema.ts';
import { type Clock, systemClock } from '../core/clock.ts';
import { ErrorCode, GatewayError } from '../core/errors.ts';
import { MemoryStorage } from './memory.ts';
import { RedisStorage } from './redis.ts';
import { SqliteStorage } from './sqlite.ts';
import type { Storage } from './types.ts';

export type { Storage } from './types.ts';

export interface OpenStorageOptions {
  /** Decides expiry for every backend (each judges it by this clock, Redis included). */
  clock?: Clock;
  /** Where a networked backend reports losing and regaining its connection. */
  log?: { warn(object: object, message: string): void; info(object: object, message: string): void };
}

/**
 * Async so a networked backend (Redis) connects here: start-up fails with ERR_STORAGE_UNAVAILABLE when
 * it cannot, rather than the first request finding out.
 */
export async function openStorage(config: GatewayConfig, options: OpenStorageOptions = {}): Promise<Storage> {
  const storage = config.storage;
  const clock = options.clock ?? systemClock;
  switch (storage.type) {
    case 'memory':
      return new MemoryStorage({ clock });
    case 'sqlite':
      return new SqliteStorage(storage.path ?? join(config.dataDir, 'gateway.db'), { clock });
    case 'redis':
      return openRedis(storage, clock, options.log);
    default: {
      const unknown: never = storage;
      throw new GatewayError(ErrorCode.STORAGE_UNKNOWN_TYPE, `unknown storage type ${JSON.stringify((unknown as { type?: unknown }).type)}`);
    }
  }
}

async function openRedis(storage: RedisStorageConfig, clock: Clock, log: OpenStorageOptions['log']): Promise<Storage> {
  return RedisStorage.connect({
    url: storage.url,
    username: storage.username,
    password: storage.password,
    tlsCa: storage.tls?.caFile ? await readFile(storage.tls.caFile, 'utf8') : undefined,
    keyPrefix: storage.keyPrefix,
    connectTimeoutMs: storage.connectTimeoutMs,
    commandTimeoutMs: storage.commandTimeoutMs,
    clock,
    log,
  });
}

/**
 * Calls `sweep()` every `intervalMs` and returns a function that stops it. Sweeping only reclaims space
 * (expired entries are already invisible to readers), so a failed sweep is logged and left for the next
 * tick, a sweep still running is not started again, and the timer never keeps the process alive.
 */
export function startSweeper(storage: Storage, intervalMs: number, log?: { warn(msg: string): void }): () => void {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    storage
      .sweep()
      .catch((error: unknown) => log?.warn(`storage sweep failed: ${error instanceof Error ? error.message : String(error)}`))
      .finally(() => {
        running = false;
      });
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
