/**
 * Rate limits on MCP calls, shared by every replica through storage and cheap on the hot path
 * (docs/rate-limits.md). One step of the request pipeline: the resource server asks `admit` once the
 * body's JSON-RPC messages are known (the proxy's one parse), and answers 429 when it refuses.
 *
 * Each replica leases slices of a window's budget with one atomic `storage.increment` per lease and
 * spends them locally (src/policy/mcp-rate-limit.ts cuts the slices), so a call covered by a lease
 * costs a map lookup and no storage round trip; a bucket found empty is remembered until its window
 * ends, so a client hammering past its limit costs no storage traffic either. Slices never overlap:
 * the replicas together never admit more than the limit; the price is that budget leased by one
 * replica and not spent there is lost to the others until the window ends.
 *
 * When storage cannot be reached the call is admitted and the failure logged: a limit that takes all
 * MCP traffic down with the store would turn a storage hiccup into an outage.
 */
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../observability/logger.ts';
import { bucketOf, type CallSubject, callTarget, leaseSlice, type McpRateLimitRule, windowAt } from '../policy/mcp-rate-limit.ts';
import { NS } from '../storage/records.ts';
import type { Storage } from '../storage/types.ts';

/** A refused call: which rule, and when its window ends. */
export interface RateLimitRefusal {
  readonly rule: McpRateLimitRule;
  readonly retryAfterSeconds: number;
}

/** A request's body as the limits see it: its messages, a POST body left unread, or no body. */
export type CallBody = JSONRPCMessage | JSONRPCMessage[] | 'unread' | undefined;

/** What `admit` answers: undefined when the call may go on. */
export type RateLimitVerdict = RateLimitRefusal | undefined;

export interface McpRateLimiterOptions {
  storage: Storage;
  clock: Clock;
  logger: Logger;
}

/** One bucket's budget on this replica, for its current window. */
interface LocalBudget {
  window: number;
  endsAtMs: number;
  /** Units leased and not yet spent here. */
  units: number;
  /** The window's budget is gone (a lease came back empty): refuse without asking storage again. */
  exhausted: boolean;
  /** The lease in flight, shared by every call waiting for this bucket. */
  leasing: Promise<void> | undefined;
}

/** What one call needs from one bucket. */
interface Need {
  bucket: string;
  rule: McpRateLimitRule;
  units: number;
}

/** Stale budgets (windows already over) are dropped at most this often. */
const SWEEP_INTERVAL_MS = 60_000;

export class McpRateLimiter {
  readonly #storage: Storage;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #budgets = new Map<string, LocalBudget>();
  #lastSweepMs = 0;

  constructor(options: McpRateLimiterOptions) {
    this.#storage = options.storage;
    this.#clock = options.clock;
    this.#logger = options.logger;
  }

  /**
   * Whether a call to `server` by `who`, carrying `messages` (`'unread'`: a POST body the proxy
   * streamed unread; undefined: no body), is within `rules`. Synchronous when local leases cover it. `user`/`client` rules count
   * each JSON-RPC request (a body streamed unread counts as one); `user+tool` rules count each
   * `tools/call` of a tool they name. Notifications, responses, GET streams and DELETEs count nothing.
   */
  admit(server: string, rules: readonly McpRateLimitRule[], who: CallSubject, messages: CallBody): RateLimitVerdict | Promise<RateLimitVerdict> {
    const needs = needsOf(server, rules, who, messages);
    if (needs.length === 0) return undefined;
    const now = this.#clock.now();
    if (now - this.#lastSweepMs >= SWEEP_INTERVAL_MS) this.#sweep(now);
    const verdict = this.#tryTake(needs, now);
    return verdict === 'lease' ? this.#leaseThenTake(needs) : verdict;
  }

  /** Local budgets held (for tests and metrics). */
  get bucketCount(): number {
    return this.#budgets.size;
  }

  /**
   * Takes every need from local budgets when all of them have enough, or refuses, or says a lease is
   * needed first. Nothing is taken unless everything can be: a call refused by one rule spends nothing
   * of the others.
   */
  #tryTake(needs: readonly Need[], now: number): RateLimitVerdict | 'lease' {
    let short = false;
    for (const need of needs) {
      const budget = this.#budgetFor(need, now);
      if (budget.exhausted && budget.units < need.units) return { rule: need.rule, retryAfterSeconds: windowAt(need.rule.windowSeconds, now).secondsLeft };
      if (budget.units < need.units) short = true;
    }
    if (short) return 'lease';
    for (const need of needs) (this.#budgets.get(need.bucket) as LocalBudget).units -= need.units;
    return undefined;
  }

  async #leaseThenTake(needs: readonly Need[]): Promise<RateLimitVerdict> {
    try {
      for (;;) {
        const now = this.#clock.now();
        const leases: Promise<void>[] = [];
        for (const need of needs) {
          const budget = this.#budgetFor(need, now);
          if (budget.units < need.units && !budget.exhausted) leases.push(this.#lease(need, budget));
        }
        if (leases.length > 0) await Promise.all(leases);
        const verdict = this.#tryTake(needs, this.#clock.now());
        if (verdict !== 'lease') return verdict;
      }
    } catch (error) {
      this.#logger.error({ event: 'rate_limit.storage_failed', err: error }, 'rate-limit lease failed; call admitted');
      return undefined;
    }
  }

  /** One lease for a bucket at a time: calls arriving meanwhile wait for the same one. */
  #lease(need: Need, budget: LocalBudget): Promise<void> {
    budget.leasing ??= this.#leaseOnce(need, budget).finally(() => {
      budget.leasing = undefined;
    });
    return budget.leasing;
  }

  async #leaseOnce(need: Need, budget: LocalBudget): Promise<void> {
    const { rule } = need;
    const window = windowAt(rule.windowSeconds, this.#clock.now());
    if (window.index !== budget.window) return; // The window ended while waiting: the caller looks again.
    const lease = await this.#storage.increment(NS.rateLimits, `mcp:${need.bucket}:${window.index}`, window.secondsLeft);
    if (budget.window !== window.index) return;
    const slice = leaseSlice(lease, rule.limit, rule.maxLease);
    if (slice.size === 0) budget.exhausted = true;
    else budget.units += slice.size;
  }

  /** The bucket's budget for the window `now` is in; a new window starts from nothing. */
  #budgetFor(need: Need, now: number): LocalBudget {
    const window = windowAt(need.rule.windowSeconds, now);
    let budget = this.#budgets.get(need.bucket);
    if (budget === undefined) {
      budget = { window: window.index, endsAtMs: window.endsAtMs, units: 0, exhausted: false, leasing: undefined };
      this.#budgets.set(need.bucket, budget);
    } else if (budget.window !== window.index) {
      budget.window = window.index;
      budget.endsAtMs = window.endsAtMs;
      budget.units = 0;
      budget.exhausted = false;
    }
    return budget;
  }

  #sweep(now: number): void {
    this.#lastSweepMs = now;
    for (const [bucket, budget] of this.#budgets) if (budget.endsAtMs <= now && budget.leasing === undefined) this.#budgets.delete(bucket);
  }
}

/** The buckets a call counts in, with how many units each. */
function needsOf(server: string, rules: readonly McpRateLimitRule[], who: CallSubject, messages: CallBody): Need[] {
  const needs: Need[] = [];
  const list = messages === undefined || messages === 'unread' ? undefined : Array.isArray(messages) ? messages : [messages];
  let requests = messages === 'unread' ? 1 : 0;
  if (list !== undefined) for (const message of list) if (isCall(message)) requests++;
  for (let index = 0; index < rules.length; index++) {
    const rule = rules[index] as McpRateLimitRule;
    if (rule.per !== 'user+tool') {
      if (requests > 0) needs.push({ bucket: bucketOf(server, index, rule, who, undefined) as string, rule, units: requests });
      continue;
    }
    if (list === undefined) continue;
    for (const message of list) {
      if (!isCall(message)) continue;
      const bucket = bucketOf(server, index, rule, who, callTarget(message)?.tool);
      if (bucket === undefined) continue;
      const same = needs.find((need) => need.bucket === bucket);
      if (same) same.units++;
      else needs.push({ bucket, rule, units: 1 });
    }
  }
  return needs;
}

/** A JSON-RPC request (a method and an id), which is what the limits count. */
function isCall(message: JSONRPCMessage): boolean {
  return 'method' in message && 'id' in message;
}
