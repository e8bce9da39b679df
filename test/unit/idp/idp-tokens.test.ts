/**
 * The IdP-token source (src/idp/idp-tokens.ts) against a real IdP that rotates refresh tokens
 * (oidc-provider, reuse detection on): two "replicas" (two token sources on one storage) refreshing
 * one user at once make one refresh, and a replica that read the tokens before another refreshed them
 * does not spend the dead refresh token (which would log the user out); a refresh response without
 * `expires_in` does not inherit the old, past expiry.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import * as client from 'openid-client';
import { createOutboundFetch, type OutboundFetch } from '../../../src/http/outbound.ts';
import { createIdpTokenSource } from '../../../src/idp/idp-tokens.ts';
import type { OidcIdentityProvider } from '../../../src/idp/oidc.ts';
import { createOidcProvider } from '../../../src/idp/presets/index.ts';
import type { IdentityProvider, IdpTokens } from '../../../src/idp/types.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { MemoryStorage } from '../../../src/storage/memory.ts';
import { NS } from '../../../src/storage/records.ts';
import { SecretBox } from '../../../src/storage/secret-box.ts';
import type { Storage } from '../../../src/storage/types.ts';
import { Browser } from '../../support/browser.ts';
import { TestClock } from '../../support/clock.ts';
import { type OidcIdp, startOidcIdp } from '../../support/oidc-idp.ts';
import { freePort } from '../../support/ports.ts';
import { createTestCa, type TestCa } from '../../support/tls.ts';

const USER = 'okta:alice';
let ca: TestCa;
let idp: OidcIdp;
let outbound: OutboundFetch;
let provider: OidcIdentityProvider;
let callbackUrl: string;
const box = new SecretBox([randomBytes(32)]);

/** A real login through the provider; returns the IdP tokens the gateway would store. */
async function login(): Promise<IdpTokens> {
  const state = { state: client.randomState(), codeVerifier: client.randomPKCECodeVerifier(), nonce: client.randomNonce() };
  const browser = new Browser({ ca: ca.caPem });
  try {
    const page = await idp.signIn(browser, await browser.goto(await provider.authorizationUrl(state, callbackUrl)), 'alice', { stopAt: callbackUrl });
    return (await provider.completeLogin(page.url, state, callbackUrl)).tokens;
  } finally {
    await browser.close();
  }
}

/** Stores tokens as the gateway does, with an access token that has just expired. */
async function storeExpired(storage: Storage, tokens: IdpTokens): Promise<void> {
  await storage.set(NS.idpTokens, USER, box.sealJson({ ...tokens, expiresAt: Math.floor(Date.now() / 1000) - 1 }, USER));
}

function tokenRequests(): number {
  return idp.requests.filter((request) => request.method === 'POST' && request.path === '/token').length;
}

function source(storage: Storage, providers: IdentityProvider[] = [provider], clock?: TestClock) {
  return createIdpTokenSource({ storage, secretBox: box, providers, logger: createLogger('silent'), clock });
}

before(async () => {
  ca = await createTestCa();
  outbound = createOutboundFetch({ extraCaPem: ca.caPem, timeoutMs: 5_000 });
  callbackUrl = `https://localhost:${await freePort()}/callback`;
  idp = await startOidcIdp({
    clientId: 'gw',
    clientSecret: 'secret-0123456789',
    redirectUris: [callbackUrl],
    users: { alice: { email: 'alice@example.com' } },
    rotateRefreshToken: true,
  });
  provider = createOidcProvider(
    {
      type: 'okta',
      id: 'okta',
      displayName: 'Okta',
      issuer: idp.issuer,
      clientId: 'gw',
      clientSecret: 'secret-0123456789',
      scopes: ['openid', 'email', 'offline_access'],
      authorizationParams: {},
      claims: {},
      clockTolerance: 30,
    },
    { fetch: outbound },
  );
});

after(async () => {
  await idp.close();
  await outbound.close();
});

describe('IdP-token source with a rotating IdP', () => {
  test('two replicas at once: one refresh, both get the new token', async () => {
    const storage = new MemoryStorage();
    await storeExpired(storage, await login());
    const before = tokenRequests();
    const [a, b] = await Promise.all([source(storage).accessTokenFor(USER), source(storage).accessTokenFor(USER)]);
    assert.equal(a.accessToken, b.accessToken);
    assert.equal(tokenRequests() - before, 1, 'one refresh at the IdP');
  });

  test('a replica that read the tokens before another refreshed them re-reads under the lock instead of spending the dead refresh token', async () => {
    const storage = new MemoryStorage();
    await storeExpired(storage, await login());
    // Replica B reads the (expired) tokens, then stalls before taking the lock until A has refreshed.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let stalled!: () => void;
    const reachedLock = new Promise<void>((resolve) => (stalled = resolve));
    const slowLock: Storage = {
      get: (...args) => storage.get(...args),
      set: (...args) => storage.set(...args),
      expire: (...args) => storage.expire(...args),
      delete: (...args) => storage.delete(...args),
      consume: (...args) => storage.consume(...args),
      addToSet: (...args) => storage.addToSet(...args),
      members: (...args) => storage.members(...args),
      setIfAbsent: (...args) => storage.setIfAbsent(...args),
      list: (...args) => storage.list(...args),
      ping: () => storage.ping(),
      sweep: () => storage.sweep(),
      close: () => storage.close(),
      async increment(...args) {
        stalled();
        await gate;
        return storage.increment(...args);
      },
    };
    const before = tokenRequests();
    const pendingB = source(slowLock).accessTokenFor(USER);
    await reachedLock;
    const a = await source(storage).accessTokenFor(USER);
    release();
    const b = await pendingB;
    assert.equal(b.accessToken, a.accessToken, 'B uses the token A obtained');
    assert.equal(tokenRequests() - before, 1, 'the rotated-away refresh token was not sent again');
    assert.ok(await storage.get(NS.idpTokens, USER), 'the user is still signed in upstream');
  });

  test('a refresh without expires_in does not keep the old expiry (which would look expired at once)', async () => {
    const storage = new MemoryStorage();
    await storeExpired(storage, await login());
    // The same IdP, seen through a provider whose refresh answers carry no expires_in.
    const noExpiry: IdentityProvider = {
      id: 'okta',
      displayName: 'Okta',
      authorizationUrl: (...args) => provider.authorizationUrl(...args),
      completeLogin: (...args) => provider.completeLogin(...args),
      async refresh(tokens) {
        const { expiresAt: _dropped, ...rest } = await provider.refresh(tokens);
        return rest;
      },
    };
    const token = await source(storage, [noExpiry]).accessTokenFor(USER);
    assert.equal(token.expiresAt, undefined);
    const stored = box.openJson<IdpTokens>((await storage.get<string>(NS.idpTokens, USER))!, USER);
    assert.equal(stored.expiresAt, undefined);
    assert.equal(stored.accessToken, token.accessToken);
  });

  test('refreshes when its clock reaches the minimum validity before expiry, and not earlier', async () => {
    const clock = new TestClock();
    const storage = new MemoryStorage({ clock });
    const tokens = await login();
    const expiresAt = Math.floor(clock.now() / 1000) + 3600;
    await storage.set(NS.idpTokens, USER, box.sealJson({ ...tokens, expiresAt }, USER));
    const tokenSource = source(storage, [provider], clock);
    const before = tokenRequests();

    clock.advance((3600 - 61) * 1000);
    assert.equal((await tokenSource.accessTokenFor(USER, 60)).accessToken, tokens.accessToken, '61 s left: still the stored token');
    assert.equal(tokenRequests(), before);

    clock.advance(1000);
    const refreshed = await tokenSource.accessTokenFor(USER, 60);
    assert.notEqual(refreshed.accessToken, tokens.accessToken, '60 s left: refreshed');
    assert.equal(tokenRequests(), before + 1);
  });
});
