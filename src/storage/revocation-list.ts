/**
 * The grants that were revoked while access tokens issued under them may still be unexpired, shared
 * by every replica through the one Storage (docs/tokens.md, "Revocation").
 *
 * Access tokens are JWTs checked locally (src/resource-server/token-verifier.ts), so revoking a grant
 * in storage alone would leave its access tokens working until they expire. Each token names its grant
 * (`grant_id`), and every replica keeps the revoked grant ids in memory:
 * - `isRevoked` is one map lookup, the only cost on the hot path (ARCHITECTURE.md, "Performance");
 * - `revoke` takes effect in this process at once, then stores `revoked-grant/<grant id>` for as long
 *   as one of its access tokens can live and writes a new generation stamp;
 * - every replica reads the generation stamp once per poll interval (one storage read per interval,
 *   never one per request) and reloads the list when the stamp changed, so a revocation made on
 *   another replica, or by an admin command in another process, applies everywhere within an interval.
 *
 * The stamp is a random value rather than a counter: a counter with a TTL (Storage.increment) could
 * expire and count back up to a value a replica last saw, hiding a change; a fresh random stamp never
 * repeats. An entry is always written before its stamp, so a replica that sees the stamp sees the entry.
 *
 * If storage cannot be read, the replica keeps the list it has and tries again at the next tick (the
 * failure is logged once per outage): refusing every token during a storage outage would take all MCP
 * traffic down with it, while the revocations this replica already knows keep applying.
 */
import { randomUUID } from 'node:crypto';
import { type Clock, systemClock } from '../core/clock.ts';
import type { Logger } from '../observability/logger.ts';
import { NS } from './records.ts';
import type { Storage } from './types.ts';

/** The access-token claim that names the token's grant: an opaque id the gateway matches against this list. */
export const GRANT_ID_CLAIM = 'grant_id';

/**
 * How long a revocation is kept: the access-token lifetime, the clock skew the token checks tolerate,
 * and a minute for replicas whose clocks disagree, after which no access token of the grant is accepted anywhere.
 */
export function revocationRetentionSeconds(accessTokenTtl: number, clockToleranceSeconds = 5): number {
  return accessTokenTtl + clockToleranceSeconds + 60;
}

/** What is stored per revoked grant; `until` (epoch ms) is when no access token of the grant can be live any more. */
interface RevokedGrantRecord {
  revokedAt: number;
  until: number;
}

/** Starts a repeating timer and returns a function that stops it; tests pass one they drive by hand. */
export type Ticker = (tick: () => void, intervalMs: number) => () => void;

/** A real interval that never keeps the process alive. */
export const intervalTicker: Ticker = (tick, intervalMs) => {
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
};

export interface RevocationListOptions {
  storage: Storage;
  /**
   * Seconds a revocation is kept: the access-token lifetime plus the clock skew tolerated when tokens
   * are checked, after which every access token of the grant has expired anyway.
   */
  retentionSeconds: number;
  /** How often the replica looks for revocations made elsewhere, in milliseconds. */
  pollIntervalMs: number;
  logger?: Pick<Logger, 'warn' | 'info'>;
  clock?: Clock;
  ticker?: Ticker;
}

const GENERATION_KEY = 'generation';

export class RevocationList {
  readonly #storage: Storage;
  readonly #retentionSeconds: number;
  readonly #pollIntervalMs: number;
  readonly #logger: Pick<Logger, 'warn' | 'info'> | undefined;
  readonly #clock: Clock;
  readonly #ticker: Ticker;
  /** grant id -> epoch ms after which the entry can be forgotten. */
  readonly #revoked = new Map<string, number>();
  /** Revocations being written, so the calls oidc-provider makes at once for one grant share one write. */
  readonly #writing = new Map<string, Promise<void>>();
  #generation: string | undefined;
  #syncing: Promise<void> | undefined;
  #stop: (() => void) | undefined;
  #failing = false;
  #stopped = false;

  constructor(options: RevocationListOptions) {
    this.#storage = options.storage;
    this.#retentionSeconds = options.retentionSeconds;
    this.#pollIntervalMs = options.pollIntervalMs;
    this.#logger = options.logger;
    this.#clock = options.clock ?? systemClock;
    this.#ticker = options.ticker ?? intervalTicker;
  }

  /** The hot path: one map lookup, no promise. */
  isRevoked(grantId: string): boolean {
    return this.#revoked.has(grantId);
  }

  get size(): number {
    return this.#revoked.size;
  }

  /**
   * Revokes a grant: at once in this process, then in storage for every other replica. Idempotent, so
   * the several calls oidc-provider makes for one revocation (one per token model) cost one write each.
   */
  revoke(grantId: string): Promise<void> {
    const now = this.#clock.now();
    const until = now + this.#retentionSeconds * 1000;
    this.#revoked.set(grantId, until);
    let writing = this.#writing.get(grantId);
    if (writing === undefined) {
      writing = this.#store(grantId, { revokedAt: now, until }).finally(() => this.#writing.delete(grantId));
      this.#writing.set(grantId, writing);
    }
    return writing;
  }

  async #store(grantId: string, record: RevokedGrantRecord): Promise<void> {
    await this.#storage.set(NS.revokedGrants, grantId, record, this.#retentionSeconds);
    // After the entry: a replica that sees the new stamp finds the entry when it reloads.
    await this.#storage.set(NS.revocationGeneration, GENERATION_KEY, randomUUID());
  }

  /**
   * One poll: reads the generation stamp and reloads the list when it changed. Concurrent calls share
   * one poll. Never rejects; a storage failure keeps the current list.
   */
  sync(): Promise<void> {
    this.#syncing ??= this.#poll().finally(() => {
      this.#syncing = undefined;
    });
    return this.#syncing;
  }

  /** Polls every `pollIntervalMs` until `stop`; the timer never keeps the process alive. */
  start(): void {
    this.#stopped = false;
    this.#stop ??= this.#ticker(() => void this.sync(), this.#pollIntervalMs);
  }

  stop(): void {
    this.#stopped = true;
    this.#stop?.();
    this.#stop = undefined;
  }

  async #poll(): Promise<void> {
    try {
      const generation = await this.#storage.get<string>(NS.revocationGeneration, GENERATION_KEY);
      if (generation !== this.#generation) {
        const entries = await this.#storage.list<RevokedGrantRecord>(NS.revokedGrants);
        // Merged, never replaced: a revocation this process made a moment ago may not be listed yet.
        for (const { key, value } of entries)
          this.#revoked.set(key, typeof value?.until === 'number' ? value.until : this.#clock.now() + this.#retentionSeconds * 1000);
        this.#generation = generation;
      }
      this.#forgetExpired();
      if (this.#failing) this.#logger?.info({ event: 'revocation_list.recovered' }, 'revocation list readable again');
      this.#failing = false;
    } catch (error) {
      // A poll cut short by shutdown (storage closed under it) is no outage.
      if (!this.#failing && !this.#stopped) {
        this.#logger?.warn({ event: 'revocation_list.unreadable', err: error }, 'revocation list could not be read; keeping the revocations known so far');
      }
      this.#failing = true;
    }
  }

  /** Entries past their retention can go: every access token of those grants has expired. */
  #forgetExpired(): void {
    const now = this.#clock.now();
    for (const [grantId, until] of this.#revoked) if (until <= now) this.#revoked.delete(grantId);
  }
}
