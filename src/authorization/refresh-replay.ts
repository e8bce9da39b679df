/**
 * Refresh-token rotation that tolerates real clients (docs/tokens.md). oidc-provider rotates the
 * refresh token on every use and treats any second presentation as reuse: it revokes the whole grant
 * (RFC 9700 §4.14.2). Real clients present one refresh token twice without being compromised: Gemini
 * CLI sends two refreshes 1 ms apart, Claude.ai refreshes from several workers, and a client whose
 * response was lost retries with the token it still holds. Each of those logged the user out.
 *
 * RFC 9700 §4.14.2 leaves room for this: rotation exists to detect a token used by two parties, and a
 * presentation within a short grace period after rotation, by the same client, with the same request,
 * is the same party. Within `tokens.refreshReuseGraceSeconds` such a presentation gets the response
 * the first one got (the same new pair); after it, reuse revokes the grant as before.
 *
 * How it hooks oidc-provider without patching it, through two public extension points:
 * - `beforeRotation`, called from `findAccount` (src/authorization/provider.ts). oidc-provider's
 *   refresh_token grant calls it after it found the refresh token, matched its client, checked its
 *   expiry and validated the grant, and before it looks at `consumed` (where reuse detection revokes).
 *   The first presenter takes a single-flight claim in storage (`setIfAbsent`, so replicas agree) and
 *   goes on to rotate; any other presenter stops there (ConcurrentRefresh) and waits.
 * - the koa middleware (`provider.use`), around the token endpoint: after the first presenter's
 *   request it stores the response, sealed with the SecretBox (tokens are never at rest in clear),
 *   under the SHA-256 of the presented token, for the grace period (an error only briefly, so waiters
 *   get the same error and a later retry starts afresh); then it releases the claim. For a waiting
 *   presenter it polls storage until that outcome appears (with a deadline, across replicas) and
 *   answers with it, once it has checked that the grant was not revoked meanwhile.
 */
import { createHash } from 'node:crypto';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import { type Clock, epochSeconds } from '../core/clock.ts';
import type { Logger } from '../observability/logger.ts';
import { NS } from '../storage/records.ts';
import type { SecretBox } from '../storage/secret-box.ts';
import type { Storage } from '../storage/types.ts';
import { answerInvalidGrant, grantRevoked } from './revoked-grants.ts';

export interface RefreshReplayOptions {
  storage: Storage;
  /** Required when graceSeconds > 0. */
  secretBox: SecretBox | undefined;
  clock: Clock;
  logger: Logger;
  /** `tokens.refreshReuseGraceSeconds`; 0 turns replay off (every reuse revokes the grant). */
  graceSeconds: number;
  /** How long a concurrent presenter waits for the first one's outcome (10 s by default). */
  waitMs?: number;
}

export interface RefreshReplay {
  /** From `findAccount` for a refresh token; throws ConcurrentRefresh when another presenter rotates. */
  beforeRotation(ctx: KoaContextWithOIDC, token: { grantId?: string }): Promise<void>;
  /** For `provider.use`, outermost: records the first presenter's outcome, answers the others with it. */
  middleware(ctx: KoaContextWithOIDC, next: () => Promise<unknown>): Promise<void>;
}

/**
 * Thrown from `findAccount` so that oidc-provider stops before its reuse detection; the middleware
 * replaces the invalid_grant it renders with the first presenter's outcome. Should the middleware be
 * missing, the client still gets a plain invalid_grant and nothing is revoked.
 */
export class ConcurrentRefresh extends errors.InvalidGrant {
  constructor() {
    super('refresh token presented again while, or shortly after, it was rotated');
  }
}

/**
 * A crashed first presenter must not block its token for long: the claim expires on its own. Waiters
 * give up before that (waitMs) with temporarily_unavailable, which clients retry.
 */
const CLAIM_TTL_SECONDS = 30;
/** An error outcome only serves presenters already waiting; a later retry goes through afresh. */
const ERROR_OUTCOME_TTL_SECONDS = 2;
const DEFAULT_WAIT_MS = 10_000;
/** Cross-replica waiters poll; waiters in this process are woken at once. */
const POLL_MS = 20;

interface Role {
  kind: 'first' | 'waiter';
  /** SHA-256 of the presented refresh token: the storage key, never the token itself. */
  key: string;
  clientId: string;
  grantId: string | undefined;
  /** The request parameters that shape the response (scope, resource). */
  request: string;
}

/** What the first presenter got, kept for the grace period (an error: briefly). */
interface Outcome {
  clientId: string;
  grantId: string | undefined;
  request: string;
  status: number;
  /** Epoch ms (gateway clock) of the response, to report the access token's remaining lifetime. */
  at: number;
  /** `{ type, body }` of the response, sealed with the refresh token hash as associated data. */
  sealed: string;
}

interface Response {
  type: string;
  body: unknown;
}

export function createRefreshReplay(options: RefreshReplayOptions): RefreshReplay {
  const { storage, secretBox, clock, logger, graceSeconds } = options;
  // Off: every reuse of a rotated refresh token revokes its grant, as oidc-provider alone does.
  // Without a SecretBox nothing could be kept at rest safely (provider.ts refuses that combination).
  if (graceSeconds <= 0 || !secretBox) return { beforeRotation: async () => {}, middleware: async (_ctx, next) => void (await next()) };
  const box: SecretBox = secretBox;
  const waitMs = options.waitMs ?? DEFAULT_WAIT_MS;
  const roles = new WeakMap<object, Role>();
  const wakers = new Map<string, Set<() => void>>();

  function wake(key: string): void {
    for (const resolve of wakers.get(key) ?? []) resolve();
    wakers.delete(key);
  }

  /** Resolves after POLL_MS, or earlier when a request in this process records the outcome. */
  function pause(key: string): Promise<void> {
    return new Promise((resolve) => {
      const waiting = wakers.get(key) ?? new Set();
      wakers.set(key, waiting);
      const done = () => {
        clearTimeout(timer);
        waiting.delete(done);
        // The outcome may come from another replica, with no wake here: leave no empty entry behind.
        if (waiting.size === 0 && wakers.get(key) === waiting) wakers.delete(key);
        resolve();
      };
      const timer = setTimeout(done, POLL_MS);
      waiting.add(done);
    });
  }

  async function waitForOutcome(key: string): Promise<Outcome | undefined> {
    const deadline = performance.now() + waitMs;
    for (;;) {
      const outcome = await storage.get<Outcome>(NS.refreshOutcomes, key);
      if (outcome) return outcome;
      // The outcome is stored before the claim is released, so no claim means: read once more, and
      // if still nothing, the first presenter ended without one (its process died, or storing failed).
      if ((await storage.get(NS.refreshClaims, key)) === undefined) return storage.get<Outcome>(NS.refreshOutcomes, key);
      if (performance.now() >= deadline) return undefined;
      await pause(key);
    }
  }

  async function recordOutcome(ctx: KoaContextWithOIDC, role: Role): Promise<void> {
    try {
      const succeeded = ctx.status === 200;
      const response: Response = { type: ctx.type, body: ctx.body };
      const outcome: Outcome = {
        clientId: role.clientId,
        grantId: role.grantId,
        request: role.request,
        status: ctx.status,
        at: clock.now(),
        sealed: box.sealJson(response, sealContext(role.key)),
      };
      await storage.set(NS.refreshOutcomes, role.key, outcome, succeeded ? graceSeconds : ERROR_OUTCOME_TTL_SECONDS);
    } catch (error) {
      // The first presenter's own answer stands; waiters find no outcome and are told to retry.
      logger.error({ err: error, event: 'refresh.outcome_not_stored', clientId: role.clientId }, 'refresh outcome could not be stored');
    } finally {
      await releaseClaim(role.key);
    }
  }

  async function releaseClaim(key: string): Promise<void> {
    try {
      await storage.delete(NS.refreshClaims, key);
    } catch (error) {
      logger.error({ err: error, event: 'refresh.claim_not_released' }, 'refresh claim could not be released');
      retryRelease(key, 1);
    }
    wake(key);
  }

  /**
   * A claim left behind by a storage outage would turn every retry of that refresh token into a 503
   * until the claim expires (CLAIM_TTL_SECONDS): try again in the background, so the token is free as
   * soon as storage is back. The timer never keeps the process alive.
   */
  function retryRelease(key: string, attempt: number): void {
    if (attempt > CLAIM_TTL_SECONDS) return; // one try per second; the claim has expired by now anyway
    const timer = setTimeout(() => {
      storage.delete(NS.refreshClaims, key).then(
        () => wake(key),
        () => retryRelease(key, attempt + 1),
      );
    }, 1000);
    timer.unref();
  }

  async function answerWaiter(ctx: KoaContextWithOIDC, role: Role): Promise<void> {
    const outcome = await waitForOutcome(role.key);
    const audit = { clientId: role.clientId, grantId: role.grantId };
    if (!outcome) {
      logger.warn(
        { event: 'token.refused', ...audit, grantType: 'refresh_token', error: 'temporarily_unavailable', detail: 'no outcome from the concurrent refresh' },
        'concurrent refresh did not finish in time',
      );
      ctx.status = 503;
      ctx.type = 'application/json; charset=utf-8';
      ctx.set('retry-after', '1');
      ctx.body = { error: 'temporarily_unavailable', error_description: 'the refresh token is being refreshed by another request; try again' };
      return;
    }
    // oidc-provider already refused another client's presentation ('client mismatch'); the outcome
    // is bound to the client and the request again so that nothing else can ever be answered with it.
    if (outcome.clientId !== role.clientId || outcome.request !== role.request) {
      logger.warn(
        {
          event: 'token.refused',
          ...audit,
          grantType: 'refresh_token',
          error: 'invalid_grant',
          detail: 'presented again with other parameters or by another client',
        },
        'refresh replay refused',
      );
      answerInvalidGrant(ctx);
      return;
    }
    const response = box.openJson<Response>(outcome.sealed, sealContext(role.key));
    if (outcome.status === 200) {
      const body = remainingLifetime(response.body as Record<string, unknown>, outcome.at);
      if (body === undefined || (outcome.grantId !== undefined && (await grantRevoked(storage, ctx, outcome.grantId)))) {
        logger.warn(
          {
            event: 'token.refused',
            ...audit,
            grantType: 'refresh_token',
            error: 'invalid_grant',
            detail: 'grant revoked or access token expired before the replay',
          },
          'refresh replay refused',
        );
        answerInvalidGrant(ctx);
        return;
      }
      response.body = body;
    }
    ctx.status = outcome.status;
    ctx.type = response.type;
    ctx.body = response.body;
    logger.info(
      { event: 'token.replayed', ...audit, status: outcome.status },
      'refresh token presented again within the grace period; first response replayed',
    );
  }

  /** The same access token, so `expires_in` is what is left of it; undefined once it has expired. */
  function remainingLifetime(body: Record<string, unknown>, at: number): Record<string, unknown> | undefined {
    if (typeof body.expires_in !== 'number') return body;
    const left = body.expires_in - Math.floor((clock.now() - at) / 1000);
    return left > 0 ? { ...body, expires_in: left } : undefined;
  }

  return {
    async beforeRotation(ctx, token) {
      if (ctx.oidc.route !== 'token' || ctx.oidc.params?.grant_type !== 'refresh_token') return;
      const presented = ctx.oidc.params.refresh_token;
      const clientId = ctx.oidc.client?.clientId;
      // Once per request: oidc-provider may look the account up again while building the response.
      if (typeof presented !== 'string' || clientId === undefined || roles.has(ctx)) return;
      const role: Role = { kind: 'first', key: sha256(presented), clientId, grantId: token.grantId, request: requestFingerprint(ctx) };
      const outcomeExists = (await storage.get(NS.refreshOutcomes, role.key)) !== undefined;
      if (!outcomeExists && (await storage.setIfAbsent(NS.refreshClaims, role.key, { since: epochSeconds(clock) }, CLAIM_TTL_SECONDS))) {
        roles.set(ctx, role);
        return;
      }
      roles.set(ctx, { ...role, kind: 'waiter' });
      throw new ConcurrentRefresh();
    },

    async middleware(ctx, next) {
      try {
        await next();
      } catch (error) {
        // oidc-provider renders its own errors, so this is a failure of the error path itself: free the
        // claim at once (waiters then answer temporarily_unavailable) rather than at its expiry.
        const role = roles.get(ctx);
        if (role?.kind === 'first') await releaseClaim(role.key);
        throw error;
      }
      const role = roles.get(ctx);
      if (role?.kind === 'first') await recordOutcome(ctx, role);
      else if (role?.kind === 'waiter') {
        try {
          await answerWaiter(ctx, role);
        } catch (error) {
          // Storage unreachable, or an outcome sealed with a key this replica lacks: an OAuth error
          // with nothing internal in it, and the process stays up.
          logger.error({ err: error, event: 'refresh.replay_failed', clientId: role.clientId }, 'refresh replay failed');
          ctx.status = 500;
          ctx.type = 'application/json; charset=utf-8';
          ctx.body = { error: 'server_error', error_description: 'the token could not be refreshed; try again' };
        }
      }
    },
  };
}

function sha256(value: string): string {
  return createHash('sha256').update(value).digest('base64url');
}

/** Associated data for the sealed outcome: it opens only under the key it was stored at. */
function sealContext(key: string): string {
  return `refresh-outcome:${key}`;
}

/** The parameters besides the token that shape a refresh response: a replay must match them. */
function requestFingerprint(ctx: KoaContextWithOIDC): string {
  const { scope, resource } = ctx.oidc.params ?? {};
  const resources = [resource]
    .flat()
    .filter((value) => typeof value === 'string')
    .sort();
  return sha256(JSON.stringify([typeof scope === 'string' ? scope : null, resources]));
}
