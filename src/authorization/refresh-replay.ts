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
 *   The first presenter takes a single-flight claim in storage (`setIfAbsent`, so replicas agree), a
 *   short lease it renews while its request runs, marks the rotation as started, and goes on to
 *   rotate. Any other presenter waits there for the first one's outcome, then stops
 *   (ConcurrentRefresh) so that the middleware answers with that outcome.
 * - the koa middleware (`provider.use`), around the token endpoint: after the first presenter's
 *   request it stores the response, sealed with the SecretBox (tokens are never at rest in clear),
 *   under the SHA-256 of the presented token, for the grace period (an error only briefly, so waiters
 *   get the same error and a later retry starts afresh); then it releases the claim. A new pair is
 *   handed out only once its outcome is stored: the one invariant the lost-response case rests on.
 *
 * A lost response (RFC 9700 §4.14.2 is about two parties; a client that never received the new pair
 * is one party): the first presenter's process died, or its storage failed, after oidc-provider had
 * consumed the old token and before the outcome was stored. Nobody holds the new pair then. Its lease
 * runs out within seconds, a retry takes the claim, finds the rotation mark (so the consumption is
 * within the grace period) and no outcome, clears the consumed state for this one request and lets
 * oidc-provider rotate again: an equivalent new pair instead of a revoked grant. Without the mark
 * (the rotation is older than the grace period) a consumed token is left to reuse detection.
 */
import { createHash, randomUUID } from 'node:crypto';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import { type Clock, epochSeconds } from '../core/clock.ts';
import type { Logger } from '../observability/logger.ts';
import { NS } from '../storage/records.ts';
import type { SecretBox } from '../storage/secret-box.ts';
import type { Storage } from '../storage/types.ts';
import { answerInvalidGrant, grantRevoked } from './revoked-grants.ts';
import { ADAPTER_NS, storedKey } from './stored-ids.ts';

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
  /**
   * From `findAccount` for a refresh token: the first presenter returns (and rotates), any other waits
   * for its outcome and throws ConcurrentRefresh. `token` is oidc-provider's RefreshToken model.
   */
  beforeRotation(ctx: KoaContextWithOIDC, token: { grantId?: string; consumed?: unknown }): Promise<void>;
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
 * The claim is a lease: it lives CLAIM_LEASE_SECONDS and the first presenter renews it every
 * LEASE_RENEW_MS while its request runs. A presenter whose process died (kill -9, OOM) stops renewing,
 * so the presenters waiting for it see the claim go within seconds and one of them takes over, rather
 * than waiting out a long fixed expiry. Renewal every second leaves four missed renewals of margin on a
 * busy event loop before a live presenter loses its lease.
 */
const CLAIM_LEASE_SECONDS = 5;
const LEASE_RENEW_MS = 1000;
/** An error outcome only serves presenters already waiting; a later retry goes through afresh. */
const ERROR_OUTCOME_TTL_SECONDS = 2;
/** How long a presenter waits for a live first presenter; longer than the lease, so a dead one is always outlived. */
const DEFAULT_WAIT_MS = 10_000;
/** Cross-replica waiters poll; waiters in this process are woken at once. */
const POLL_MS = 20;

interface Presentation {
  /** SHA-256 of the presented refresh token: the storage key, never the token itself. */
  key: string;
  /** The key of the presented token's consumed marker in the adapter (src/authorization/adapter.ts). */
  consumedKey: string;
  clientId: string;
  grantId: string | undefined;
  /** The request parameters that shape the response (scope, resource). */
  request: string;
}

type Role =
  | (Presentation & { kind: 'first'; owner: string; renewal: NodeJS.Timeout })
  /** `outcome` undefined: the first presenter was still at work when the wait ended. */
  | (Presentation & { kind: 'waiter'; outcome: Outcome | undefined });

/** The claim's value: which request holds it (a random id per request), for the logs and the release. */
interface Claim {
  owner: string;
  since: number;
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

/** The mark that a rotation of the token started, kept for the grace period. */
interface RotationStarted {
  at: number;
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

  /**
   * Waits while another request holds the claim: its outcome once stored; 'released' when the claim
   * went without one (its process died, or its storage failed); undefined at the deadline.
   */
  async function waitWhileClaimed(key: string, deadline: number): Promise<Outcome | 'released' | undefined> {
    for (;;) {
      const outcome = await storage.get<Outcome>(NS.refreshOutcomes, key);
      if (outcome) return outcome;
      // The outcome is stored before the claim is released, so no claim means: read once more, and
      // if still nothing, the first presenter ended without one.
      if ((await storage.get(NS.refreshClaims, key)) === undefined) return (await storage.get<Outcome>(NS.refreshOutcomes, key)) ?? 'released';
      if (performance.now() >= deadline) return undefined;
      await pause(key);
    }
  }

  /** While the first presenter's request runs, its lease is renewed; the timer never keeps the process alive. */
  function renewLease(key: string): NodeJS.Timeout {
    const timer = setInterval(() => {
      storage.expire(NS.refreshClaims, key, CLAIM_LEASE_SECONDS).catch(() => {
        // Storage is down: the request itself fails too, and the lease runs out on its own.
      });
    }, LEASE_RENEW_MS);
    timer.unref();
    return timer;
  }

  /**
   * The claim is ours and no outcome exists. A rotation mark means an earlier presentation of this
   * token started rotating within the grace period and ended without an outcome: a response lost to
   * a crash or a storage failure, never delivered (a pair is delivered only once its outcome is
   * stored). That is one party retrying, not two parties (RFC 9700 §4.14.2): clear the consumed state
   * for this request so oidc-provider rotates again, instead of revoking the grant. Without the mark,
   * a consumed token is reuse after the grace period and oidc-provider revokes, as it should.
   */
  async function prepareRotation(role: Role & { kind: 'first' }, token: { consumed?: unknown }): Promise<void> {
    const started = await storage.get<RotationStarted>(NS.refreshRotations, role.key);
    if (!started) {
      // Consumed longer ago than the grace period: reuse, which oidc-provider answers by revoking.
      if (token.consumed !== undefined) return;
      // Before oidc-provider consumes the token: a crash after this point is recognised by a retry.
      await storage.set(NS.refreshRotations, role.key, { at: clock.now() } satisfies RotationStarted, graceSeconds);
      return;
    }
    const consumed = token.consumed !== undefined || (await storage.get(ADAPTER_NS.consumed, role.consumedKey)) !== undefined;
    if (!consumed) return; // the earlier attempt ended before consuming: a plain rotation
    await storage.delete(ADAPTER_NS.consumed, role.consumedKey);
    token.consumed = undefined;
    // The pair the lost attempt may have saved was never handed out; it is stored hashed, dies with
    // the grant, and expires with its TTL (docs/tokens.md, "A response lost to a crash").
    logger.warn(
      { event: 'refresh.rotation_resumed', clientId: role.clientId, grantId: role.grantId, startedAt: started.at },
      'refresh token consumed by a rotation whose response was lost; rotating again instead of revoking',
    );
  }

  async function recordOutcome(ctx: KoaContextWithOIDC, role: Role & { kind: 'first' }): Promise<void> {
    const succeeded = ctx.status === 200;
    try {
      const response: Response = { type: ctx.type, body: ctx.body };
      const outcome: Outcome = {
        clientId: role.clientId,
        grantId: role.grantId,
        request: role.request,
        status: ctx.status,
        at: clock.now(),
        sealed: box.sealJson(response, sealContext(role.key)),
      };
      // First writer wins: should this request have lost its lease (a stalled process) and another
      // have rotated meanwhile, only one pair is ever handed out.
      if (!(await storage.setIfAbsent(NS.refreshOutcomes, role.key, outcome, succeeded ? graceSeconds : ERROR_OUTCOME_TTL_SECONDS))) {
        const stored = await storage.get<Outcome>(NS.refreshOutcomes, role.key);
        if (succeeded) await discardNewRefreshToken(ctx);
        await answer(ctx, { ...role, kind: 'waiter', outcome: stored });
      }
    } catch (error) {
      logger.error({ err: error, event: 'refresh.outcome_not_stored', clientId: role.clientId }, 'refresh outcome could not be stored');
      // A pair whose outcome is not stored must not be handed out: its retry could not be answered
      // with it, and would rotate again. The client retries; the retry resumes the rotation. The new
      // refresh token is left alone: a write that timed out may still have landed, and then the
      // retry is answered with this very pair, which must keep working.
      if (succeeded) answerUnavailable(ctx);
    } finally {
      await releaseClaim(role);
    }
  }

  /** The new refresh token of a rotation whose answer is not handed out, so that nothing unanswered stays valid. */
  async function discardNewRefreshToken(ctx: KoaContextWithOIDC): Promise<void> {
    const entities = ctx.oidc.entities as { RotatedRefreshToken?: unknown; RefreshToken?: { destroy(): Promise<void> } };
    if (entities.RotatedRefreshToken && entities.RefreshToken) await entities.RefreshToken.destroy();
  }

  async function releaseClaim(role: Role & { kind: 'first' }): Promise<void> {
    clearInterval(role.renewal);
    try {
      await releaseOwnClaim(role.key, role.owner);
    } catch (error) {
      logger.error({ err: error, event: 'refresh.claim_not_released' }, 'refresh claim could not be released; trying again in the background');
      releaseInBackground(role.key, role.owner, 1);
    }
    wake(role.key);
  }

  /** Deletes the claim if this request holds it: not one another request took after this one's lease ran out. */
  async function releaseOwnClaim(key: string, owner: string): Promise<void> {
    const claim = await storage.get<Claim>(NS.refreshClaims, key);
    if (claim?.owner === owner) await storage.delete(NS.refreshClaims, key);
  }

  /**
   * A claim a storage outage left behind (its release failed, or its write timed out here and landed
   * in storage all the same) would make the next presenter wait for its lease to run out: try again
   * every second, so the token is free as soon as storage is back. The timer never keeps the process
   * alive, and once the lease has run out there is nothing left to release.
   */
  function releaseInBackground(key: string, owner: string, attempt: number): void {
    if (attempt > CLAIM_LEASE_SECONDS) return;
    const timer = setTimeout(() => {
      releaseOwnClaim(key, owner).then(
        () => wake(key),
        () => releaseInBackground(key, owner, attempt + 1),
      );
    }, 1000);
    timer.unref();
  }

  function answerUnavailable(ctx: KoaContextWithOIDC): void {
    ctx.status = 503;
    ctx.type = 'application/json; charset=utf-8';
    ctx.set('retry-after', '1');
    ctx.body = { error: 'temporarily_unavailable', error_description: 'the refresh token is being refreshed by another request; try again' };
  }

  async function answer(ctx: KoaContextWithOIDC, role: Role & { kind: 'waiter' }): Promise<void> {
    const { outcome } = role;
    const audit = { clientId: role.clientId, grantId: role.grantId };
    if (!outcome) {
      logger.warn(
        { event: 'token.refused', ...audit, grantType: 'refresh_token', error: 'temporarily_unavailable', detail: 'no outcome from the concurrent refresh' },
        'concurrent refresh did not finish in time',
      );
      answerUnavailable(ctx);
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

  function waitFor(ctx: KoaContextWithOIDC, presentation: Presentation, outcome: Outcome | undefined): never {
    roles.set(ctx, { ...presentation, kind: 'waiter', outcome });
    throw new ConcurrentRefresh();
  }

  return {
    async beforeRotation(ctx, token) {
      if (ctx.oidc.route !== 'token' || ctx.oidc.params?.grant_type !== 'refresh_token') return;
      const presented = ctx.oidc.params.refresh_token;
      const clientId = ctx.oidc.client?.clientId;
      // Once per request: oidc-provider may look the account up again while building the response.
      if (typeof presented !== 'string' || clientId === undefined || roles.has(ctx)) return;
      const presentation: Presentation = {
        key: sha256(presented),
        consumedKey: `RefreshToken:${storedKey('RefreshToken', presented)}`,
        clientId,
        grantId: token.grantId,
        request: requestFingerprint(ctx),
      };
      const deadline = performance.now() + waitMs;
      for (;;) {
        const outcome = await storage.get<Outcome>(NS.refreshOutcomes, presentation.key);
        if (outcome) waitFor(ctx, presentation, outcome);
        const owner = randomUUID();
        const claimed = await storage
          .setIfAbsent(NS.refreshClaims, presentation.key, { owner, since: epochSeconds(clock) } satisfies Claim, CLAIM_LEASE_SECONDS)
          .catch((error: unknown) => {
            releaseInBackground(presentation.key, owner, 1);
            throw error;
          });
        if (claimed) {
          const role = { ...presentation, kind: 'first' as const, owner, renewal: renewLease(presentation.key) };
          roles.set(ctx, role);
          // The outcome is stored before the claim is released: read it again now that the claim is
          // ours, or a presentation that found none just before the first one finished would rotate
          // a consumed token (and oidc-provider would revoke the grant).
          const finished = await storage.get<Outcome>(NS.refreshOutcomes, presentation.key);
          if (finished) {
            await releaseClaim(role);
            waitFor(ctx, presentation, finished);
          }
          await prepareRotation(role, token);
          return;
        }
        const seen = await waitWhileClaimed(presentation.key, deadline);
        if (seen !== 'released') waitFor(ctx, presentation, seen);
        // The claim went without an outcome: take it over (next turn), and resume a lost rotation.
      }
    },

    async middleware(ctx, next) {
      try {
        await next();
      } catch (error) {
        // oidc-provider renders its own errors, so this is a failure of the error path itself: free the
        // claim at once (waiters then take over) rather than at its expiry.
        const role = roles.get(ctx);
        if (role?.kind === 'first') await releaseClaim(role);
        throw error;
      }
      const role = roles.get(ctx);
      if (role?.kind === 'first') await recordOutcome(ctx, role);
      else if (role?.kind === 'waiter') {
        try {
          await answer(ctx, role);
        } catch (error) {
          // An outcome sealed with a key this replica lacks, or storage unreachable: an OAuth error
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
