/** Picks the storage backend the configuration asks for, and keeps expired entries from piling up. */
import { join } from 'node:path';
import type { GatewayConfig } from '../config/schema.ts';
import { MemoryStorage } from './memory.ts';
import { SqliteStorage } from './sqlite.ts';
import type { Storage } from './types.ts';

export type { Storage } from './types.ts';

/** Async so a networked backend (Redis) can connect here without changing callers. */
export async function openStorage(config: GatewayConfig): Promise<Storage> {
  const storage = config.storage;
  switch (storage.type) {
    case 'memory':
      return new MemoryStorage();
    case 'sqlite':
      return new SqliteStorage(storage.path ?? join(config.dataDir, 'gateway.db'));
    default: {
      const unknown: never = storage;
      throw new Error(`unknown storage type ${JSON.stringify((unknown as { type?: unknown }).type)}`);
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
