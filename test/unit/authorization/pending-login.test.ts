/**
 * The pending login (pending-login.ts) against the real memory storage: sealed at rest, single-use
 * even under concurrent callbacks, and expired by the context's clock (RFC 9700 §4.7.1).
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { PENDING_LOGIN_TTL_SECONDS, type PendingLogin, storePendingLogin, takePendingLogin } from '../../../src/authorization/interactions/pending-login.ts';
import { type Clock, systemClock } from '../../../src/core/clock.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { MemoryStorage } from '../../../src/storage/memory.ts';
import { NS } from '../../../src/storage/records.ts';
import { SecretBox } from '../../../src/storage/secret-box.ts';
import { TestClock } from '../../support/clock.ts';

function context(clock: Clock = systemClock) {
  return { storage: new MemoryStorage(), secretBox: new SecretBox([randomBytes(32)]), clock, logger: createLogger('silent') };
}

function pendingLogin(expiresAt: number): PendingLogin {
  return {
    state: randomBytes(32).toString('base64url'),
    codeVerifier: 'verifier',
    nonce: 'nonce',
    interactionUid: 'uid',
    providerId: 'local',
    clientId: 'client',
    clientName: 'Client',
    redirectUri: 'https://client.example/cb',
    resourceIndicator: 'https://gw.example/mcp',
    resource: 'https://gw.example/mcp',
    resourceScopes: [],
    oidcScopes: [],
    browser: 'digest',
    expiresAt,
  };
}

test('a pending login is stored sealed and taken exactly once, even by concurrent callbacks', async () => {
  const ctx = context();
  const pending = pendingLogin(Math.floor(Date.now() / 1000) + PENDING_LOGIN_TTL_SECONDS);
  await storePendingLogin(ctx, pending);
  const stored = await ctx.storage.get<string>(NS.pendingLogins, pending.state);
  assert.ok(stored && !stored.includes(pending.codeVerifier), 'the PKCE verifier is not stored in clear');
  const taken = await Promise.all([takePendingLogin(ctx, pending.state), takePendingLogin(ctx, pending.state), takePendingLogin(ctx, pending.state)]);
  assert.deepEqual(taken.filter(Boolean), [pending]);
  assert.equal(await takePendingLogin(ctx, pending.state), undefined);
});

test('an expired pending login is not returned, and not left behind either', async () => {
  const clock = new TestClock();
  const ctx = context(clock);
  const pending = pendingLogin(Math.floor(clock.now() / 1000) + PENDING_LOGIN_TTL_SECONDS);
  await storePendingLogin(ctx, pending);
  clock.advance((PENDING_LOGIN_TTL_SECONDS + 1) * 1000);
  assert.equal(await takePendingLogin(ctx, pending.state), undefined);
  assert.equal(await ctx.storage.get(NS.pendingLogins, pending.state), undefined);
});

test('no state, or a record sealed under another state or another key, yields nothing', async () => {
  const ctx = context();
  assert.equal(await takePendingLogin(ctx, null), undefined);
  assert.equal(await takePendingLogin(ctx, ''), undefined);
  const pending = pendingLogin(Math.floor(Date.now() / 1000) + 60);
  await storePendingLogin(ctx, pending);
  // A sealed record moved under another key does not open there (its state is the associated data).
  await ctx.storage.set(NS.pendingLogins, 'other-state', await ctx.storage.get(NS.pendingLogins, pending.state), 60);
  assert.equal(await takePendingLogin(ctx, 'other-state'), undefined);
  // Sealed under a key the gateway no longer has: the same answer as an expired sign-in, not a 500.
  const before = pendingLogin(Math.floor(Date.now() / 1000) + 60);
  await storePendingLogin({ ...ctx, secretBox: new SecretBox([randomBytes(32)]) }, before);
  assert.equal(await takePendingLogin(ctx, before.state), undefined);
  assert.equal(await ctx.storage.get(NS.pendingLogins, before.state), undefined, 'consumed, so it cannot be retried');
});
