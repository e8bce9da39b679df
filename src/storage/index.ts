/** Picks the storage backend the configuration asks for, and keeps expired entries from piling up. */
import { join } from 'node:path';
import type { GatewayConfig } from '../config/schema.ts';
import { type Clock, systemClock } from '../core/clock.ts';
import { ErrorCode, GatewayError } from '../core/errors.ts';
import { MemoryStorage } from './memory.ts';
import { SqliteStorage } from './sqlite.ts';
import type { Storage } from './types.ts';

export type { Storage } from './types.ts';

/**
 * Async so a networked backend (Redis) can connect here without changing callers. `clock` decides
 * expiry for the backends that keep time themselves.
 */
export async function openStorage(config: GatewayConfig, options: { clock?: Clock } = {}): Promise<Storage> {
  const storage = config.storage;
  const clock = options.clock ?? systemClock;
  switch (storage.type) {
    case 'memory':
      return new MemoryStorage({ clock });
    case 'sqlite':
      return new SqliteStorage(storage.path ?? join(config.dataDir, 'gateway.db'), { clock });
    default: {
      const unknown: never = storage;
      throw new GatewayError(ErrorCode.STORAGE_UNKNOWN_TYPE, `unknown storage type ${JSON.stringify((unknown as { type?: unknown }).type)}`);
    }
  }
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
