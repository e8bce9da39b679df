/**
 * Rate limits on MCP traffic, as pure decisions (docs/rate-limits.md): which buckets one call counts
 * against, which window a moment falls in, and which slice of a window's budget the k-th lease of
 * that window covers. The counting is done by src/resource-server/mcp-rate-limit.ts with one atomic
 * `storage.increment` per lease, never per request.
 *
 * Windows are fixed and aligned to the clock (`floor(now / window)`, so a day is a UTC day), like the
 * other rate limits (rate-limit.ts): every replica agrees on when a window ends without talking to
 * the others, and `Retry-After` is known without a read.
 *
 * Leases: a window's budget is cut into disjoint slices numbered 1, 2, 3…; a replica that runs out of
 * local budget increments the window's lease counter and gets the slice with that number. Slices never
 * overlap, so the replicas together never admit more than the limit. Early slices are large (at most
 * `maxLease`), later ones shrink to a quarter of what is left and finally to 1, so what other replicas
 * hold unspent when the budget runs out (calls refused here that the limit would still allow) stays
 * small: at most `(replicas - 1) × min(maxLease, remaining / 4)`.
 */

/** Whose calls a rule counts together. */
export type RateLimitSubject = 'user' | 'client' | 'user+tool';

export interface McpRateLimitRule {
  per: RateLimitSubject;
  /** Calls allowed per window. */
  limit: number;
  windowSeconds: number;
  /** `user+tool` rules: the tools counted (each one separately); empty or absent: every tool. */
  tools?: readonly string[];
  /** Largest slice of the budget one replica leases at a time. */
  maxLease: number;
}

/** Who is calling and what: the identities a rule can count by. */
export interface CallSubject {
  user: string;
  client: string;
}

/** A slice is a quarter of what is left of the window's budget (at most `maxLease`, at least 1). */
const SHRINK_DIVISOR = 4;

/** The window `nowMs` falls in, and the whole seconds until it closes (at least 1: the Retry-After). */
export function windowAt(windowSeconds: number, nowMs: number): { index: number; secondsLeft: number; endsAtMs: number } {
  const windowMs = windowSeconds * 1000;
  const index = Math.floor(nowMs / windowMs);
  const endsAtMs = (index + 1) * windowMs;
  return { index, endsAtMs, secondsLeft: Math.max(1, Math.ceil((endsAtMs - nowMs) / 1000)) };
}

/**
 * The bucket a rule counts a call in (without the window number), or undefined when the rule does not
 * count it: a `user+tool` rule counts only `tools/call` of its tools. The server's name and the rule's
 * position keep two rules (or two servers) from sharing a counter.
 */
export function bucketOf(server: string, ruleIndex: number, rule: McpRateLimitRule, who: CallSubject, tool: string | undefined): string | undefined {
  switch (rule.per) {
    case 'user':
      return `${server}:${ruleIndex}:u:${who.user}`;
    case 'client':
      return `${server}:${ruleIndex}:c:${who.client}`;
    case 'user+tool':
      if (tool === undefined) return undefined;
      if (rule.tools !== undefined && rule.tools.length > 0 && !rule.tools.includes(tool)) return undefined;
      // Tool names are free text from the client: JSON-encoded so no name can end one part early.
      return `${server}:${ruleIndex}:ut:${who.user}:${JSON.stringify(tool)}`;
  }
}

/** Units `[start, start + size)` of a window's budget; `size` 0 once the budget is gone. */
export interface LeaseSlice {
  start: number;
  size: number;
}

/**
 * The slice the `lease`-th lease (1-based) of a window covers. Deterministic in its arguments, so
 * every replica computes the same cut of the budget from the counter alone.
 */
export function leaseSlice(lease: number, limit: number, maxLease: number): LeaseSlice {
  const max = Math.max(1, Math.floor(maxLease));
  // While a quarter of what is left is at least `max`, slices are exactly `max`: skip them in one step.
  const fullSlices = Math.max(0, Math.floor((limit - SHRINK_DIVISOR * max) / max) + 1);
  if (lease <= fullSlices) return { start: (lease - 1) * max, size: max };
  let start = fullSlices * max;
  for (let k = fullSlices + 1; ; k++) {
    if (start >= limit) return { start: limit, size: 0 };
    const size = Math.min(max, Math.max(1, Math.ceil((limit - start) / SHRINK_DIVISOR)));
    if (k === lease) return { start, size: Math.min(size, limit - start) };
    start += size;
  }
}

/** The method of each JSON-RPC request in a body and what it names (tool, prompt, resource). */
export interface CallTarget {
  method: string;
  /** `tools/call`: `params.name`. */
  tool?: string;
  /** `prompts/get`: `params.name`. */
  prompt?: string;
  /** `resources/read`, `resources/subscribe`, `resources/unsubscribe`: `params.uri`. */
  resource?: string;
}

/** What one JSON-RPC message asks for, read from its parsed form (no second parse). */
export function callTarget(message: object): CallTarget | undefined {
  const { method, params } = message as { method?: unknown; params?: unknown };
  if (typeof method !== 'string') return undefined;
  if (typeof params !== 'object' || params === null) return { method };
  const p = params as { name?: unknown; uri?: unknown };
  if (method === 'tools/call' && typeof p.name === 'string') return { method, tool: p.name };
  if (method === 'prompts/get' && typeof p.name === 'string') return { method, prompt: p.name };
  if (method.startsWith('resources/') && typeof p.uri === 'string') return { method, resource: p.uri };
  return { method };
}
