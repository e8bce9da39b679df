/**
 * A clock that stands still until a test moves it, for the gateway's `clock` options: a test that
 * needs an entry or a token to expire advances it past the expiry instead of sleeping, so it takes no
 * time and cannot lose a race against a loaded machine.
 *
 * It starts at the real time by default, so tokens that a real oidc-provider signs with its own
 * `Date.now()` fall inside the gateway's idea of "now" (issued just before, expiring after).
 */
import type { Clock } from '../../src/core/clock.ts';

export class TestClock implements Clock {
  #now: number;

  constructor(start: number = Date.now()) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  /** Moves time forward by `ms`; time never goes backwards. */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`a test clock only moves forward (advance(${ms}))`);
    this.#now += ms;
  }
}
