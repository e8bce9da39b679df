/**
 * Keeps a dynamically registered client alive while it is in use (registration hygiene,
 * src/authorization/adapter.ts): a login or a refresh extends the client's expiry to
 * `registration.idleClientTtl`. Doing that on every refresh was a storage write per refresh (a Redis
 * round trip, a SQLite commit) for an expiry that moves by minutes out of 90 days; here it is done at
 * most once per interval per client and process.
 *
 * Why skipping is safe: the expiry is never shortened by skipping, only extended less often, so a
 * client in use keeps at least `idleClientTtl - interval` ahead of it (the interval is at most a tenth
 * of it). Replicas keep their own record; each extends at most once per interval, which is harmless.
 * A client whose record is written again (registration) is forgotten here, so its next use extends
 * it at once; a process that restarts extends at the first use.
 */
import type { Clock } from '../core/clock.ts';
import type { Storage } from '../storage/types.ts';
import { ADAPTER_NS } from './stored-ids.ts';

/** At most a day between extensions of one client's expiry, and at most a tenth of the idle TTL. */
const MAX_INTERVAL_SECONDS = 86_400;
/** Clients remembered; beyond it the one extended longest ago is forgotten (and extended at its next use). */
const MAX_REMEMBERED = 10_000;

export class ClientKeepAlive {
  readonly #storage: Storage;
  readonly #clock: Clock;
  readonly #idleClientTtl: number;
  readonly #intervalMs: number;
  /** client_id → epoch ms of its last extension by this process, oldest first (Map insertion order). */
  readonly #extendedAt = new Map<string, number>();

  constructor(storage: Storage, clock: Clock, idleClientTtl: number) {
    this.#storage = storage;
    this.#clock = clock;
    this.#idleClientTtl = idleClientTtl;
    this.#intervalMs = Math.min(MAX_INTERVAL_SECONDS, Math.floor(idleClientTtl / 10)) * 1000;
  }

  /** The client completed a login or refreshed: extend its expiry unless this process did so recently. */
  async used(clientId: string): Promise<void> {
    const now = this.#clock.now();
    const last = this.#extendedAt.get(clientId);
    if (last !== undefined && now - last < this.#intervalMs) return;
    // false: no such client (expired, or a static one); nothing is remembered, so the next use tries again.
    if (!(await this.#storage.expire(ADAPTER_NS.model('Client'), clientId, this.#idleClientTtl))) return;
    this.#extendedAt.delete(clientId);
    this.#extendedAt.set(clientId, now);
    if (this.#extendedAt.size > MAX_REMEMBERED) this.#extendedAt.delete(this.#extendedAt.keys().next().value!);
  }

  /** The client's record was written (its expiry set anew): extend it at its next use. */
  written(clientId: string): void {
    this.#extendedAt.delete(clientId);
  }
}
