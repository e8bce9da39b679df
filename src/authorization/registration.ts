/**
 * Dynamic client registration (RFC 7591) before oidc-provider sees it: the body normalised so the real
 * registration requests of Cursor, VS Code and Claude succeed, and a per-address limit on how many
 * clients one address may register.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Clock, systemClock } from '../core/clock.ts';
import { readBody } from '../http/body.ts';
import { clientAddressResolver, type TrustProxy } from '../http/client-address.ts';
import { OAuthError, sendJson, sendOAuthError } from '../http/errors.ts';
import type { Logger } from '../observability/logger.ts';
import { type RateLimitRule, rateLimitDecision, rateLimitWindow } from '../policy/rate-limit.ts';
import { NS } from '../storage/records.ts';
import type { Storage } from '../storage/types.ts';
import { normaliseClientMetadata } from './client-metadata.ts';

/** A registration body is a few redirect URIs and names; anything far bigger is not one. */
const MAX_REGISTRATION_BYTES = 56 * 1024;

export interface RegistrationOptions {
  storage: Storage;
  logger: Logger;
  /** Scopes a client may register (see `registrableScopes`). */
  knownScopes: ReadonlySet<string>;
  trustProxy: TrustProxy;
  rateLimit: { perAddress: number; windowSeconds: number };
  /** Times the rate-limit windows; tests pass their own clock. */
  clock?: Clock;
}

export interface RegistrationGuards {
  /**
   * The request with its body normalised (see client-metadata.ts), for oidc-provider to read from a
   * replay; undefined means an error was already answered.
   */
  normalisedRegistration(req: IncomingMessage, res: ServerResponse): Promise<IncomingMessage | undefined>;
  /** False when the address is over its limit and the 429 was already answered. */
  registrationWithinLimit(req: IncomingMessage, res: ServerResponse): Promise<boolean>;
}

export function createRegistrationGuards(options: RegistrationOptions): RegistrationGuards {
  const clientAddress = clientAddressResolver(options.trustProxy);
  const rule: RateLimitRule = { limit: options.rateLimit.perAddress, windowSeconds: options.rateLimit.windowSeconds };
  const clock = options.clock ?? systemClock;
  return {
    normalisedRegistration: (req, res) => normalisedRegistration(req, res, options.knownScopes),
    registrationWithinLimit: (req, res) => registrationWithinLimit(res, { ...options, rule, address: clientAddress(req), nowMs: clock.now() }),
  };
}

async function normalisedRegistration(req: IncomingMessage, res: ServerResponse, knownScopes: ReadonlySet<string>): Promise<IncomingMessage | undefined> {
  try {
    const body = await readBody(req, MAX_REGISTRATION_BYTES);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      throw new OAuthError('invalid_client_metadata', 'the registration body is not valid JSON');
    }
    const normalised = normaliseClientMetadata(parsed, { knownScopes, source: 'registration' });
    return replayWithBody(req, Buffer.from(JSON.stringify(normalised)));
  } catch (error) {
    sendOAuthError(res, error);
    return undefined;
  }
}

/**
 * Registrations per client address (behind a proxy, the address `trustProxy` resolves), counted in
 * storage so replicas share the count. Over the limit: 429 (RFC 6585 §4) with `Retry-After`.
 * RFC 7591 §3.2.2 defines no rate-limit error, and lets servers use other codes; the body uses
 * `temporarily_unavailable`, the registered OAuth code for "cannot handle the request now, try
 * later" (RFC 6749 §4.1.2.1), so a generic OAuth client reads it as retryable, not as a rejection
 * of its metadata (which `invalid_client_metadata` would wrongly suggest).
 */
async function registrationWithinLimit(
  res: ServerResponse,
  context: { storage: Storage; logger: Logger; rule: RateLimitRule; address: string | undefined; nowMs: number },
): Promise<boolean> {
  const { rule, address } = context;
  if (rule.limit <= 0) return true;
  const window = rateLimitWindow('register', address, rule, context.nowMs);
  const count = await context.storage.increment(NS.rateLimits, window.key, window.secondsLeft);
  const decision = rateLimitDecision(count, rule, window);
  if (decision.allowed) return true;
  // Logged once per window and address, not once per refused request, so a flood cannot flood the log.
  if (count === rule.limit + 1)
    context.logger.warn(
      { event: 'client.registration_rate_limited', address, limit: rule.limit, windowSeconds: rule.windowSeconds },
      'client registrations rate-limited',
    );
  sendJson(
    res,
    429,
    {
      error: 'temporarily_unavailable',
      error_description: `Too many client registrations from this address; try again in ${decision.retryAfterSeconds} seconds.`,
    },
    { 'retry-after': String(decision.retryAfterSeconds), 'access-control-allow-origin': '*', 'access-control-expose-headers': 'retry-after' },
  );
  return false;
}

/**
 * The same request with another body: everything else (socket, method, url, listeners) is the
 * original's, through the prototype. oidc-provider reads bodies with `req.iterator()`.
 */
function replayWithBody(req: IncomingMessage, body: Buffer): IncomingMessage {
  async function* chunks() {
    yield body;
  }
  return Object.create(req, {
    readable: { value: true },
    readableEncoding: { value: null },
    headers: { value: { ...req.headers, 'content-length': String(body.length) } },
    iterator: { value: () => chunks() },
    [Symbol.asyncIterator]: { value: () => chunks() },
  }) as IncomingMessage;
}
