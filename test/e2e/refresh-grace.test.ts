/**
 * Refresh as real clients do it (docs/tokens.md): several refreshes of one refresh token at once
 * (Gemini CLI sends two 1 ms apart, Claude.ai refreshes from several workers), a retry after a lost
 * response, the same across two gateway instances on one store; reuse after the grace period still
 * revokes the grant (RFC 9700 §4.14.2), and no token is issued for a grant already revoked.
 *
 * Time past the grace period is a TestClock advance, never a sleep.
 */

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { type RunningGateway, startGateway } from '../../src/app.ts';
import { configSchema } from '../../src/config/schema.ts';
import { ErrorCode, GatewayError } from '../../src/core/errors.ts';
import { NS } from '../../src/storage/records.ts';
import type { Storage } from '../../src/storage/types.ts';
import { Browser } from '../support/browser.ts';
import { TestClock } from '../support/clock.ts';
import { LogWatch } from '../support/log-watch.ts';
import { freePort } from '../support/ports.ts';
import {
  authorizationCode,
  authorizeAndExchange,
  inspectAccessToken,
  mcpInitialize,
  type Registered,
  registerPublicClient,
  type TokenResponse,
  tokenRequest,
} from './oauth.ts';
import { type Stack, startStack } from './stack.ts';

/**
 * Holds the next token request right after oidc-provider marked its refresh token or authorization
 * code consumed (the adapter's write of the consumed payload), until `release`: a real interleaving
 * with a revocation, made deterministic.
 */
function holdAfterConsume(storage: Storage): { reached: Promise<void>; release(): void; restore(): void } {
  const realSet = storage.set.bind(storage);
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let reached: () => void = () => {};
  const reachedHold = new Promise<void>((resolve) => {
    reached = resolve;
  });
  let armed = true;
  storage.set = (async (namespace: string, key: string, value: unknown, ttlSeconds?: number) => {
    await realSet(namespace, key, value, ttlSeconds);
    if (armed && typeof (value as { consumed?: unknown } | null)?.consumed === 'number') {
      armed = false;
      reached();
      await released;
    }
  }) as typeof storage.set;
  return {
    reached: reachedHold,
    release,
    restore() {
      release();
      storage.set = realSet;
    },
  };
}

/** A refused grant: 400 invalid_grant, and no access token in the answer. */
function assertNothingIssued(response: TokenResponse, why = 'a token was issued'): void {
  assert.equal(response.status, 400, `${why}: ${JSON.stringify(response.body)}`);
  assert.equal(response.body.error, 'invalid_grant');
  assert.equal(response.body.access_token, undefined);
}

/**
 * Holds the next write of a refresh outcome (whichever way it is written) of one gateway instance,
 * and stops that instance renewing its refresh claims: what a replica killed after oidc-provider
 * rotated the token, and before the outcome reached storage, leaves behind. `release` lets the write
 * go on (the "dead" request then answers), for the test's cleanup.
 */
function dieBeforeOutcome(storage: Storage): { reached: Promise<void>; release(): void; restore(): void } {
  const realSet = storage.set.bind(storage);
  const realSetIfAbsent = storage.setIfAbsent.bind(storage);
  const realExpire = storage.expire.bind(storage);
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let reached: () => void = () => {};
  const reachedHold = new Promise<void>((resolve) => {
    reached = resolve;
  });
  let armed = true;
  const hold = async (namespace: string): Promise<void> => {
    if (armed && namespace === NS.refreshOutcomes) {
      armed = false;
      reached();
      await released;
    }
  };
  storage.set = (async (namespace: string, key: string, value: unknown, ttlSeconds?: number) => {
    await hold(namespace);
    return realSet(namespace, key, value, ttlSeconds);
  }) as typeof storage.set;
  storage.setIfAbsent = (async (namespace: string, key: string, value: unknown, ttlSeconds?: number) => {
    await hold(namespace);
    return realSetIfAbsent(namespace, key, value, ttlSeconds);
  }) as typeof storage.setIfAbsent;
  // A dead process renews no lease.
  storage.expire = (async (namespace: string, key: string, ttlSeconds: number | undefined) =>
    namespace === NS.refreshClaims ? false : realExpire(namespace, key, ttlSeconds)) as typeof storage.expire;
  return {
    reached: reachedHold,
    release,
    restore() {
      release();
      storage.set = realSet;
      storage.setIfAbsent = realSetIfAbsent;
      storage.expire = realExpire;
    },
  };
}

/** POST /token at one gateway instance (its own origin), as a public client. */
async function refreshAt(base: string, client: Registered, refreshToken: string): Promise<TokenResponse> {
  const response = await fetch(`${base}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: client.client_id }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown>, headers: response.headers };
}

/** Starts `count` refreshes of one token, `spacingMs` apart (0: one burst), spread over the bases in turn. */
async function parallelRefreshes(bases: string[], client: Registered, refreshToken: string, count: number, spacingMs: number): Promise<TokenResponse[]> {
  const pending: Promise<TokenResponse>[] = [];
  for (let index = 0; index < count; index++) {
    // Client pacing (a worker that starts 25 ms after another), not waiting for time to pass.
    if (index > 0 && spacingMs > 0) await new Promise((resolve) => setTimeout(resolve, spacingMs));
    pending.push(refreshAt(bases[index % bases.length]!, client, refreshToken));
  }
  return Promise.all(pending);
}

async function accessTokenWorks(stack: Stack, accessToken: string): Promise<number> {
  const response = await mcpInitialize(stack.mcpUrl(), accessToken);
  await response.body?.cancel();
  return response.status;
}

/** Every response is 200 with one and the same new pair, and that pair works: nobody was logged out. */
async function assertNobodyLoggedOut(stack: Stack, watch: LogWatch, client: Registered, responses: TokenResponse[], presented: string): Promise<void> {
  for (const response of responses) assert.equal(response.status, 200, JSON.stringify(response.body));
  const refreshTokens = new Set(responses.map((response) => response.body.refresh_token));
  assert.equal(refreshTokens.size, 1, 'every presenter gets the same new refresh token');
  const [newRefresh] = refreshTokens;
  assert.notEqual(newRefresh, presented, 'the token rotated');
  assert.equal(new Set(responses.map((response) => response.body.access_token)).size, 1, 'and the same access token');
  assert.equal(await accessTokenWorks(stack, String(responses[0]!.body.access_token)), 200, 'the access token works');
  const next = await refreshAt(stack.issuer, client, String(newRefresh));
  assert.equal(next.status, 200, `the new refresh token still refreshes: ${JSON.stringify(next.body)}`);
  const mine = watch.lines.filter((line) => line.clientId === client.client_id);
  assert.deepEqual(
    mine.filter((line) => line.event === 'token.refused'),
    [],
    'no refusal in the audit log',
  );
  assert.equal(mine.filter((line) => line.event === 'token.replayed').length, responses.length - 1, 'every other presenter audited as a replay');
}

describe('refresh that tolerates real clients', () => {
  const clock = new TestClock();
  const watch = new LogWatch('info');
  let stack: Stack;
  let second: RunningGateway;
  let secondBase: string;
  let graceMs: number;
  /** Past a dead first presenter's claim lease (src/authorization/refresh-replay.ts, CLAIM_LEASE_SECONDS). */
  const LEASE_MS = 6_000;

  before(async () => {
    stack = await startStack({ clock, logger: watch.logger });
    graceMs = ((configSchema.parse(stack.config).tokens as { refreshReuseGraceSeconds?: number }).refreshReuseGraceSeconds ?? 30) * 1000;
    // A second replica on the same SQLite file, data directory and encryption key, as behind a load balancer.
    const port = await freePort();
    secondBase = `http://127.0.0.1:${port}`;
    second = await startGateway(configSchema.parse({ ...stack.config, listen: { host: '127.0.0.1', port } }), {
      logger: watch.logger,
      announce: () => {},
      clock,
    });
  });
  after(async () => {
    await second?.close();
    await stack?.close();
  });

  async function loggedIn(): Promise<{ client: Registered; refreshToken: string }> {
    const client = await registerPublicClient(stack);
    const tokens = await authorizeAndExchange(stack, new Browser({ ca: stack.ca.caPem }), client);
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    return { client, refreshToken: String(tokens.body.refresh_token) };
  }

  /** Logged in and refreshed once: `refreshToken` is now the rotated-out one, `rotated` the answer that replaced it. */
  async function refreshedOnce(): Promise<{ client: Registered; refreshToken: string; rotated: TokenResponse }> {
    const { client, refreshToken } = await loggedIn();
    const rotated = await refreshAt(stack.issuer, client, refreshToken);
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    return { client, refreshToken, rotated };
  }

  for (const count of [2, 5, 10]) {
    for (const spacingMs of [0, 25]) {
      test(`${count} parallel refreshes of one refresh token (${spacingMs ? `${spacingMs} ms apart` : 'one burst'}) log nobody out`, async () => {
        const { client, refreshToken } = await loggedIn();
        const responses = await parallelRefreshes([stack.issuer], client, refreshToken, count, spacingMs);
        await assertNobodyLoggedOut(stack, watch, client, responses, refreshToken);
      });
    }
  }

  for (const count of [2, 10]) {
    test(`${count} parallel refreshes spread over two gateway instances on one store log nobody out`, async () => {
      const { client, refreshToken } = await loggedIn();
      const responses = await parallelRefreshes([stack.issuer, secondBase], client, refreshToken, count, 0);
      await assertNobodyLoggedOut(stack, watch, client, responses, refreshToken);
    });
  }

  test('a retry after a lost refresh response gets the same pair, also at the other instance', async () => {
    const { client, refreshToken } = await loggedIn();
    const lost = await refreshAt(stack.issuer, client, refreshToken);
    assert.equal(lost.status, 200, JSON.stringify(lost.body));
    clock.advance(graceMs - 1000);
    const retry = await refreshAt(stack.issuer, client, refreshToken);
    const retryElsewhere = await refreshAt(secondBase, client, refreshToken);
    for (const response of [retry, retryElsewhere]) {
      assert.equal(response.status, 200, JSON.stringify(response.body));
      assert.equal(response.body.refresh_token, lost.body.refresh_token);
      assert.equal(response.body.access_token, lost.body.access_token);
      assert.equal(response.headers.get('cache-control'), 'no-store');
      // The same access token, so its remaining lifetime rather than the full one.
      assert.ok(Number(response.body.expires_in) <= Number(lost.body.expires_in) - (graceMs - 1000) / 1000, `expires_in ${response.body.expires_in}`);
    }
    assert.equal(await accessTokenWorks(stack, String(retry.body.access_token)), 200);
    const next = await refreshAt(stack.issuer, client, String(retry.body.refresh_token));
    assert.equal(next.status, 200, JSON.stringify(next.body));
  });

  test('after the grace period, reuse of a rotated refresh token still revokes the whole grant (RFC 9700 §4.14.2)', async () => {
    const { client, refreshToken, rotated } = await refreshedOnce();
    const withinGrace = await refreshAt(stack.issuer, client, refreshToken);
    assert.equal(withinGrace.status, 200, `within the grace period the pair is replayed: ${JSON.stringify(withinGrace.body)}`);

    clock.advance(graceMs + 1000);
    const reuse = await refreshAt(stack.issuer, client, refreshToken);
    assert.equal(reuse.status, 400);
    assert.equal(reuse.body.error, 'invalid_grant');
    const newest = await refreshAt(stack.issuer, client, String(rotated.body.refresh_token));
    assert.equal(newest.status, 400, 'the newest refresh token died with the grant');
    assert.equal(newest.body.error, 'invalid_grant');
  });

  test('another client presenting the rotated refresh token within the grace period gets invalid_grant, and the owner keeps its grant', async () => {
    const { client, refreshToken, rotated } = await refreshedOnce();
    const stranger = await registerPublicClient(stack);
    for (const base of [stack.issuer, secondBase]) {
      const stolen = await refreshAt(base, stranger, refreshToken);
      assertNothingIssued(stolen);
    }
    const owner = await refreshAt(stack.issuer, client, refreshToken);
    assert.equal(owner.status, 200, `the owner's retry is still replayed: ${JSON.stringify(owner.body)}`);
    assert.equal(owner.body.refresh_token, rotated.body.refresh_token);
  });

  test('no token is issued for a grant revoked while its refresh was in flight', async () => {
    const { client, refreshToken, rotated } = await refreshedOnce();
    clock.advance(graceMs + 1000);

    // Hold the next refresh right after it consumed its refresh token, revoke the grant meanwhile by
    // reusing the old token, then let the refresh go on to issue: the interleaving that issued a
    // working access token 19 ms after its grant was revoked.
    const hold = holdAfterConsume(stack.gateway.storage);
    try {
      const inFlight = refreshAt(stack.issuer, client, String(rotated.body.refresh_token));
      await hold.reached;
      const reuse = await refreshAt(stack.issuer, client, refreshToken);
      assert.equal(reuse.body.error, 'invalid_grant', 'reuse after the grace period revoked the grant');
      hold.release();
      const late = await inFlight;
      assertNothingIssued(late, 'a token issued after its grant was revoked');
    } finally {
      hold.restore();
    }
  });

  test('no token is issued for an authorization code whose grant a replay of the code revoked meanwhile', async () => {
    const client = await registerPublicClient(stack);
    const { code, verifier, redirectUri } = await authorizationCode(stack, new Browser({ ca: stack.ca.caPem }), client);
    const exchange = { grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier, client_id: client.client_id };
    const hold = holdAfterConsume(stack.gateway.storage);
    try {
      const inFlight = tokenRequest(stack, exchange);
      await hold.reached;
      // RFC 6749 §4.1.2: a code used twice revokes the tokens issued from it.
      const replay = await tokenRequest(stack, exchange);
      assert.equal(replay.body.error, 'invalid_grant');
      hold.release();
      const late = await inFlight;
      assertNothingIssued(late, 'tokens issued after their grant was revoked');
    } finally {
      hold.restore();
    }
  });

  test('when the first refresh fails, the presenters waiting for it get the same error instead of hanging', async () => {
    const { client, refreshToken, rotated } = await refreshedOnce();
    clock.advance(graceMs + 1000);
    const hold = holdAfterConsume(stack.gateway.storage);
    try {
      const first = refreshAt(stack.issuer, client, String(rotated.body.refresh_token));
      await hold.reached;
      const waiters = [stack.issuer, secondBase, stack.issuer].map((base) => refreshAt(base, client, String(rotated.body.refresh_token)));
      // The first one fails: its grant is revoked (reuse of the old token) while it issues.
      const reuse = await refreshAt(stack.issuer, client, refreshToken);
      assert.equal(reuse.body.error, 'invalid_grant');
      hold.release();
      for (const response of await Promise.all([first, ...waiters])) {
        assert.equal(response.status, 400, JSON.stringify(response.body));
        assert.equal(response.body.error, 'invalid_grant');
      }
    } finally {
      hold.restore();
    }
  });

  test('a first presenter that vanished (its lease ran out) is taken over by the waiting presenter, which refreshes', async () => {
    const { client, refreshToken } = await loggedIn();
    // What a replica that died between claiming and rotating leaves behind: a claim nobody renews, no outcome.
    const key = createHash('sha256').update(refreshToken).digest('base64url');
    assert.ok(await stack.gateway.storage.setIfAbsent(NS.refreshClaims, key, { owner: 'dead', since: 0 }, 5));
    const storage = stack.gateway.storage;
    const realGet = storage.get.bind(storage);
    // The waiter polls the claim until it is gone; the claim's lease runs on the gateway clock.
    const polling = new Promise<void>((resolve) => {
      storage.get = (async (namespace: string, entry: string) => {
        if (namespace === NS.refreshClaims && entry === key) resolve();
        return realGet(namespace, entry);
      }) as typeof storage.get;
    });
    let answer: TokenResponse;
    try {
      const waiting = refreshAt(stack.issuer, client, refreshToken);
      await polling;
      clock.advance(LEASE_MS);
      answer = await waiting;
    } finally {
      storage.get = realGet;
    }
    assert.equal(answer.status, 200, `the waiter took the claim over and rotated: ${JSON.stringify(answer.body)}`);
    assert.equal(await accessTokenWorks(stack, String(answer.body.access_token)), 200);
  });

  test('a replica that dies after rotating and before storing the outcome: the retry gets a working new pair, nothing revoked (RFC 9700 §4.14.2)', async () => {
    const { client, refreshToken } = await loggedIn();
    const dying = dieBeforeOutcome(stack.gateway.storage);
    let cut: Promise<TokenResponse> | undefined;
    let retry: TokenResponse;
    try {
      cut = refreshAt(stack.issuer, client, refreshToken);
      // oidc-provider consumed the token and saved the new pair; the outcome never reaches storage.
      await dying.reached;
      // Its lease runs out (nobody renews it); the client retries with the token it still holds.
      clock.advance(LEASE_MS);
      retry = await refreshAt(secondBase, client, refreshToken);
      assert.equal(retry.status, 200, `a retry after the lost response refreshes: ${JSON.stringify(retry.body)}`);
      assert.notEqual(retry.body.refresh_token, refreshToken);
      assert.equal(await accessTokenWorks(stack, String(retry.body.access_token)), 200, 'its access token works');
      // Within the grace period a further retry is the usual replay of that new pair.
      const again = await refreshAt(secondBase, client, refreshToken);
      assert.equal(again.status, 200, JSON.stringify(again.body));
      assert.equal(again.body.refresh_token, retry.body.refresh_token);
      const next = await refreshAt(stack.issuer, client, String(retry.body.refresh_token));
      assert.equal(next.status, 200, `the new refresh token refreshes: ${JSON.stringify(next.body)}`);
      assert.ok(watch.some((line) => line.event === 'refresh.rotation_resumed' && line.clientId === client.client_id));
      assert.ok(!watch.some((line) => line.event === 'grant.revoked' && line.grantId === inspectAccessToken(String(next.body.access_token)).claims.grant_id));
    } finally {
      dying.restore();
    }
    // The stalled request, let go at last, finds the retry's outcome stored first and hands out nothing of its own.
    const late = await cut;
    assert.equal(late.status, 200, JSON.stringify(late.body));
    assert.equal(late.body.refresh_token, retry.body.refresh_token);
  });

  test('a refresh whose outcome cannot be stored hands out no pair, and its retry refreshes', async () => {
    const { client, refreshToken } = await loggedIn();
    const storage = stack.gateway.storage;
    const realSetIfAbsent = storage.setIfAbsent.bind(storage);
    const realSet = storage.set.bind(storage);
    let failing = true;
    const failOutcome = (namespace: string) => {
      if (failing && namespace === NS.refreshOutcomes) {
        failing = false;
        throw new GatewayError(ErrorCode.STORAGE_UNAVAILABLE, 'storage is unavailable');
      }
    };
    storage.setIfAbsent = (async (namespace: string, key: string, value: unknown, ttl?: number) => {
      failOutcome(namespace);
      return realSetIfAbsent(namespace, key, value, ttl);
    }) as typeof storage.setIfAbsent;
    storage.set = (async (namespace: string, key: string, value: unknown, ttl?: number) => {
      failOutcome(namespace);
      return realSet(namespace, key, value, ttl);
    }) as typeof storage.set;
    let first: TokenResponse;
    try {
      first = await refreshAt(stack.issuer, client, refreshToken);
    } finally {
      storage.setIfAbsent = realSetIfAbsent;
      storage.set = realSet;
    }
    assert.equal(first.status, 503, `no pair without its stored outcome: ${JSON.stringify(first.body)}`);
    assert.equal(first.body.refresh_token, undefined);
    const retry = await refreshAt(secondBase, client, refreshToken);
    assert.equal(retry.status, 200, `the retry refreshes instead of revoking: ${JSON.stringify(retry.body)}`);
    const next = await refreshAt(stack.issuer, client, String(retry.body.refresh_token));
    assert.equal(next.status, 200, JSON.stringify(next.body));
  });

  test('a rotation cut by a crash is reuse again once the grace period is over: the grant is revoked', async () => {
    const { client, refreshToken } = await loggedIn();
    const dying = dieBeforeOutcome(stack.gateway.storage);
    let cut: Promise<TokenResponse> | undefined;
    try {
      cut = refreshAt(stack.issuer, client, refreshToken);
      await dying.reached;
      clock.advance(graceMs + 1000);
      const reuse = await refreshAt(secondBase, client, refreshToken);
      assert.equal(reuse.status, 400, JSON.stringify(reuse.body));
      assert.equal(reuse.body.error, 'invalid_grant');
    } finally {
      dying.restore();
    }
    const late = await cut;
    assert.equal(late.body.refresh_token, undefined, `no pair handed out for a revoked grant: ${JSON.stringify(late.body)}`);
  });

  test('the response kept for the grace period is sealed: no token in clear at rest, nor in the logs', async () => {
    const { client, refreshToken, rotated } = await refreshedOnce();
    const kept = JSON.stringify(await stack.gateway.storage.list(NS.refreshOutcomes));
    assert.ok(kept.length > 0 && kept.includes('v1.'), 'an outcome is kept, sealed');
    const again = await refreshAt(stack.issuer, client, refreshToken);
    assert.equal(again.status, 200, JSON.stringify(again.body));
    const logged = JSON.stringify(watch.lines);
    for (const secret of [refreshToken, rotated.body.refresh_token, rotated.body.access_token]) {
      assert.ok(!kept.includes(String(secret)), 'a token is readable at rest');
      assert.ok(!logged.includes(String(secret)), 'a token is in the logs');
    }
  });

  test('a replayed response carries the access token issued for this MCP server', async () => {
    const { client, refreshToken } = await loggedIn();
    const responses = await parallelRefreshes([stack.issuer, secondBase], client, refreshToken, 2, 0);
    for (const response of responses) {
      assert.equal(response.status, 200, JSON.stringify(response.body));
      assert.equal(inspectAccessToken(String(response.body.access_token)).claims.aud, stack.mcpUrl());
    }
  });
});

describe('refresh with the grace period off (tokens.refreshReuseGraceSeconds: 0)', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({
      configure: (config) => {
        config.tokens = { refreshReuseGraceSeconds: 0 };
      },
    });
  });
  after(async () => {
    await stack?.close();
  });

  test('any reuse of a rotated refresh token revokes the whole grant at once', async () => {
    const client = await registerPublicClient(stack);
    const tokens = await authorizeAndExchange(stack, new Browser({ ca: stack.ca.caPem }), client);
    const refreshToken = String(tokens.body.refresh_token);
    const rotated = await refreshAt(stack.issuer, client, refreshToken);
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    const reuse = await refreshAt(stack.issuer, client, refreshToken);
    assert.equal(reuse.body.error, 'invalid_grant');
    const newest = await refreshAt(stack.issuer, client, String(rotated.body.refresh_token));
    assert.equal(newest.body.error, 'invalid_grant', 'the newest refresh token died with the grant');
  });
});
