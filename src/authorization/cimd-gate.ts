/**
 * Whether the gateway may fetch a Client ID Metadata Document now. oidc-provider asks before every
 * fetch (`allowFetch`; a document it has cached is not fetched and does not ask), and may ask twice in
 * one request: when `/authorize` fails for want of a client, its error handler looks the client up
 * again to decide where the error may go. A refused document (404, redirect, too large, too slow, a
 * `client_id` that is not its URL) was therefore fetched twice, holding the request for two timeouts,
 * and any unauthenticated `/authorize` made the gateway send two GETs to whatever URL it named.
 *
 * The gate, in order:
 * 1. the host allow/deny lists (`clientIdMetadataDocuments.allowHosts`/`denyHosts`);
 * 2. once per request: a second look-up in the same request is refused without a fetch;
 * 3. a recent failure: a document that could not be used is not fetched again for
 *    FAILURE_CACHE_SECONDS (the same refusal is answered at once);
 * 4. rate limits on the fetches themselves, per client address and per document host (fixed windows
 *    in storage, shared by replicas: src/policy/rate-limit.ts), so the gateway cannot be used to send a
 *    flood of GETs to a third party (RFC 9700 §4.15 on servers made to fetch attacker-chosen URLs).
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { errors } from 'oidc-provider';
import { type Clock, systemClock } from '../core/clock.ts';
import { clientAddressResolver, type TrustProxy } from '../http/client-address.ts';
import type { Logger } from '../observability/logger.ts';
import { type RateLimitRule, rateLimitDecision, rateLimitWindow } from '../policy/rate-limit.ts';
import { NS } from '../storage/records.ts';
import type { Storage } from '../storage/types.ts';
import { hostAllowed } from './cimd.ts';

/**
 * How long a refused document stays refused without a new fetch. Long enough that retries and
 * floods cost the document host nothing; short enough that a publisher who fixed the document is
 * not kept waiting (its client simply tries again a little later).
 */
export const FAILURE_CACHE_SECONDS = 30;

export interface CimdGateOptions {
  allowHosts: string[];
  denyHosts: string[];
  rateLimit: { perAddress: number; perHost: number; windowSeconds: number };
  trustProxy: TrustProxy;
  storage: Storage;
  logger: Logger;
  clock?: Clock;
}

/** What a refused fetch leaves in storage (no document content: only why). */
interface FailureRecord {
  reason: string;
}

export interface CimdGate {
  /**
   * oidc-provider's `allowFetch`: true to fetch; false or a thrown OAuth error to refuse. `ctx` is
   * undefined when the gateway's own pages look a client up outside oidc-provider's requests.
   */
  allowFetch(ctx: { req: IncomingMessage } | undefined, clientId: string): Promise<boolean>;
  /** Remembers that the document at `clientId` could not be used. */
  recordFailure(clientId: string, reason: string): Promise<void>;
}

export function createCimdGate(options: CimdGateOptions): CimdGate {
  const clientAddress = clientAddressResolver(options.trustProxy);
  const clock = options.clock ?? systemClock;
  const { storage, logger } = options;
  const window = options.rateLimit.windowSeconds;
  const perAddress: RateLimitRule = { limit: options.rateLimit.perAddress, windowSeconds: window };
  const perHost: RateLimitRule = { limit: options.rateLimit.perHost, windowSeconds: window };
  /** The documents each request has already tried; keyed by oidc-provider's Koa context. */
  const attempted = new WeakMap<object, Set<string>>();

  /** Counts one fetch against `rule`; throws a 429 once over it. */
  async function count(scope: string, address: string | undefined, rule: RateLimitRule, what: string, log: Record<string, unknown>): Promise<void> {
    if (rule.limit <= 0) return;
    const at = rateLimitWindow(scope, address, rule, clock.now());
    const reached = await storage.increment(NS.rateLimits, at.key, at.secondsLeft);
    const decision = rateLimitDecision(reached, rule, at);
    if (decision.allowed) return;
    // Once per window and counter, so a flood cannot flood the log.
    if (reached === rule.limit + 1)
      logger.warn(
        { event: 'cimd.rate_limited', ...log, limit: rule.limit, windowSeconds: rule.windowSeconds },
        'client metadata document fetches rate-limited',
      );
    throw tooMany(`Too many client metadata document fetches ${what}; try again in ${decision.retryAfterSeconds} seconds.`, decision.retryAfterSeconds);
  }

  return {
    async allowFetch(ctx, clientId) {
      const host = URL.parse(clientId)?.hostname;
      if (host === undefined || !hostAllowed(host, options)) return false;
      if (ctx !== undefined) {
        const tried = attempted.get(ctx) ?? new Set<string>();
        if (tried.has(clientId)) return false;
        tried.add(clientId);
        attempted.set(ctx, tried);
      }
      const failure = await storage.get<FailureRecord>(NS.cimdFailures, failureKey(clientId));
      if (failure !== undefined) {
        if (logger.isLevelEnabled('debug'))
          logger.debug({ event: 'cimd.refused_recently', clientId, reason: failure.reason }, 'client metadata document refused recently');
        throw new errors.InvalidClient('client_id metadata document fetch failed', `refused less than ${FAILURE_CACHE_SECONDS}s ago: ${failure.reason}`);
      }
      if (ctx !== undefined) {
        const address = clientAddress(ctx.req);
        await count('cimd-address', address, perAddress, 'from this address', { address });
      }
      await count(`cimd-host:${host.toLowerCase()}`, undefined, perHost, `from ${host}`, { host });
      return true;
    },
    async recordFailure(clientId, reason) {
      await storage.set(NS.cimdFailures, failureKey(clientId), { reason: reason.slice(0, 200) } satisfies FailureRecord, FAILURE_CACHE_SECONDS);
    },
  };
}

/** Client ids are URLs of any length: the key is their digest. */
function failureKey(clientId: string): string {
  return createHash('sha256').update(clientId).digest('base64url');
}

/**
 * `temporarily_unavailable` (RFC 6749 §4.1.2.1) with 429 (RFC 6585 §4): retryable, not a verdict on
 * the client. `retryAfterSeconds` becomes `Retry-After` on the error page (src/authorization/index.ts).
 */
function tooMany(description: string, retryAfterSeconds: number): Error {
  const error = new errors.TemporarilyUnavailable(description);
  Object.assign(error, { status: 429, statusCode: 429, retryAfterSeconds });
  return error;
}
