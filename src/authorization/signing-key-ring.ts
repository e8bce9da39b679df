/**
 * One gateway instance's live view of the signing keys (docs/keys.md): which key signs now, which
 * are published, and keeping that in step with storage and with time, without a restart.
 *
 * - Time: the state is a pure function of the stored list and the clock (signing-keys.ts); the next
 *   moment it changes is remembered, so checking "is a key due to activate or retire" is one
 *   comparison, done before every authorization-server request and every signature check.
 * - Storage: the record is read again every RELOAD_INTERVAL_MS (a timer, and lazily before an
 *   authorization-server request once that long has passed on the clock); an unchanged sealed string
 *   costs one GET and a string comparison. A token whose `kid` is unknown triggers a read too, at most
 *   once per UNKNOWN_KID_RELOAD_MS, so a flood of made-up kids cannot hammer storage.
 * - Rotation: when the schedule says the next key is due, the instance that wins the record's write
 *   lock publishes it (keys.ts); the others see it at their next read.
 */
import type { JWK } from 'jose';
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../observability/logger.ts';
import type { SecretBox } from '../storage/secret-box.ts';
import type { Storage } from '../storage/types.ts';
import { type GatewayKeys, readSealedKeys, signingKeysIn, updateSigningKeys } from './keys.ts';
import {
  generateSigningJwk,
  publicJwk,
  rotationDue,
  type SigningKeyEntry,
  type SigningKeyPolicy,
  type SigningKeyState,
  signingKeyState,
  withNextKey,
} from './signing-keys.ts';

/** How often each instance reads the key record again (well under PRE_PUBLICATION_MS). */
export const RELOAD_INTERVAL_MS = 60_000;

/** Least time between two storage reads caused by tokens with an unknown `kid`. */
export const UNKNOWN_KID_RELOAD_MS = 10_000;

export interface SigningKeyRingOptions {
  storage: Storage;
  secretBox: SecretBox;
  clock: Clock;
  logger: Logger;
  policy: SigningKeyPolicy;
  /** The keys as loaded at start-up (keys.ts). */
  initial: Pick<GatewayKeys, 'signing' | 'sealed'>;
}

export type SigningKeyListener = (state: SigningKeyState) => void;

export class SigningKeyRing {
  readonly #options: SigningKeyRingOptions;
  #sealed: string;
  #entries: SigningKeyEntry[];
  #state: SigningKeyState;
  #publicKeys: JWK[];
  #listeners: SigningKeyListener[] = [];
  #lastReloadAt: number;
  #lastUnknownKidReloadAt = Number.NEGATIVE_INFINITY;
  #maintaining: Promise<void> | undefined;
  #reloading: Promise<boolean> | undefined;

  constructor(options: SigningKeyRingOptions) {
    this.#options = options;
    this.#sealed = options.initial.sealed;
    this.#entries = options.initial.signing;
    this.#lastReloadAt = options.clock.now();
    this.#state = signingKeyState(this.#entries, this.#lastReloadAt, options.policy.retentionMs);
    this.#publicKeys = this.#state.published.map((entry) => publicJwk(entry.jwk));
  }

  /** The state now (time transitions applied). */
  state(): SigningKeyState {
    this.#applyDueTransitions();
    return this.#state;
  }

  /** The published public keys, active first: the JWKS and the resource server's key set. */
  publicKeys(): JWK[] {
    this.#applyDueTransitions();
    return this.#publicKeys;
  }

  /** Called, synchronously, each time the active key or the published set changes. */
  onChange(listener: SigningKeyListener): void {
    this.#listeners.push(listener);
  }

  /**
   * Before the authorization server answers: time transitions applied at once; the record read again
   * (and the rotation run if due) when the last read is older than the reload interval.
   */
  async ensureFresh(): Promise<void> {
    if (this.#options.clock.now() - this.#lastReloadAt >= RELOAD_INTERVAL_MS) await this.maintain();
    else this.#applyDueTransitions();
  }

  /** Reads the record, publishes the next key when the schedule says so, applies the result. Never rejects. */
  maintain(): Promise<void> {
    this.#maintaining ??= this.#maintainOnce().finally(() => {
      this.#maintaining = undefined;
    });
    return this.#maintaining;
  }

  /**
   * A token names a `kid` this instance does not know: another replica (or `keys rotate`) may have
   * published it since the last read. Reads the record at most once per UNKNOWN_KID_RELOAD_MS; resolves
   * true when the kid is known afterwards.
   */
  async refreshForUnknownKid(kid: string): Promise<boolean> {
    if (this.#knows(kid)) return true;
    const now = this.#options.clock.now();
    if (this.#reloading === undefined && now - this.#lastUnknownKidReloadAt < UNKNOWN_KID_RELOAD_MS) return false;
    this.#lastUnknownKidReloadAt = now;
    await this.#reload();
    const known = this.#knows(kid);
    this.#options.logger.debug({ event: 'signing_key.unknown_kid', kid: kid.slice(0, 64), known }, 'token with an unknown kid: key set read again');
    return known;
  }

  /**
   * Runs `maintain` every RELOAD_INTERVAL_MS of real time; returns the function that stops it and
   * waits for work in flight, so storage can be closed after it.
   */
  startTimer(): () => Promise<void> {
    const timer = setInterval(() => void this.maintain(), RELOAD_INTERVAL_MS);
    timer.unref();
    return async () => {
      clearInterval(timer);
      await Promise.all([this.#maintaining, this.#reloading]);
    };
  }

  #knows(kid: string): boolean {
    return this.publicKeys().some((key) => key.kid === kid);
  }

  async #maintainOnce(): Promise<void> {
    await this.#reload();
    const { policy } = this.#options;
    if (!rotationDue(this.#entries, this.#options.clock.now(), policy)) return;
    try {
      const update = await updateSigningKeys(this.#options.storage, this.#options.secretBox, async (current) => {
        // Read again under the lock: another replica may have published the next key meanwhile.
        const now = this.#options.clock.now();
        return rotationDue(current, now, policy) ? withNextKey(current, await generateSigningJwk(), now, policy) : undefined;
      });
      if (update.outcome === 'written') {
        const next = update.signing.at(-1)!;
        this.#options.logger.info(
          { event: 'signing_key.published', kid: next.jwk.kid, activatesAt: new Date(next.activatesAt).toISOString(), reason: 'schedule' },
          'next signing key published',
        );
      }
      await this.#reload();
    } catch (error) {
      this.#options.logger.warn({ event: 'signing_key.rotation_failed', err: error }, 'scheduled signing-key rotation failed; retried at the next reload');
    }
  }

  /** Reads the record; resolves true when it changed. Failures are logged and the keys held are kept. */
  #reload(): Promise<boolean> {
    this.#reloading ??= this.#reloadOnce().finally(() => {
      this.#reloading = undefined;
    });
    return this.#reloading;
  }

  async #reloadOnce(): Promise<boolean> {
    const { storage, secretBox, clock, logger } = this.#options;
    try {
      const sealed = await readSealedKeys(storage);
      this.#lastReloadAt = clock.now();
      if (sealed === undefined || sealed === this.#sealed) {
        this.#applyDueTransitions();
        return false;
      }
      const entries = signingKeysIn(secretBox, sealed);
      this.#sealed = sealed;
      this.#entries = entries;
      this.#apply(signingKeyState(entries, clock.now(), this.#options.policy.retentionMs));
      return true;
    } catch (error) {
      logger.warn({ event: 'signing_key.reload_failed', err: error }, 'reading the signing keys failed; the keys held are kept');
      return false;
    }
  }

  #applyDueTransitions(): void {
    const now = this.#options.clock.now();
    if (now >= this.#state.nextChangeAt) this.#apply(signingKeyState(this.#entries, now, this.#options.policy.retentionMs));
  }

  #apply(state: SigningKeyState): void {
    const before = this.#state;
    this.#state = state;
    if (sameKids(before.published, state.published) && before.active.jwk.kid === state.active.jwk.kid) return;
    this.#publicKeys = state.published.map((entry) => publicJwk(entry.jwk));
    if (before.active.jwk.kid !== state.active.jwk.kid) {
      this.#options.logger.info({ event: 'signing_key.activated', kid: state.active.jwk.kid, previous: before.active.jwk.kid }, 'signing key activated');
    }
    for (const listener of this.#listeners) listener(state);
  }
}

function sameKids(a: readonly SigningKeyEntry[], b: readonly SigningKeyEntry[]): boolean {
  return a.length === b.length && a.every((entry, index) => entry.jwk.kid === b[index]!.jwk.kid);
}
