/**
 * OidcIdentityProvider against a real OpenID Provider (test/support/oidc-idp.ts) over https with
 * the test CA, the login driven by the scripted browser: what the gateway sends upstream, what it makes
 * of the answer, and how each failure reaches the MCP client.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as client from 'openid-client';
import type { OidcProviderConfig } from '../../../src/config/schema.ts';
import type { OutboundFetch } from '../../../src/http/outbound.ts';
import { createOutboundFetch } from '../../../src/http/outbound.ts';
import { createOidcProvider } from '../../../src/idp/presets/index.ts';
import { Browser } from '../../support/browser.ts';
import type { OidcIdp, TestUser } from '../../support/oidc-idp.ts';
import { startOidcIdp } from '../../support/oidc-idp.ts';
import { freePort } from '../../support/ports.ts';
import type { TestCa } from '../../support/tls.ts';
import { createTestCa } from '../../support/tls.ts';
import { assertLoginError, newLogin } from './login-assertions.ts';
import { refusedAt } from './refused-at.ts';

const USERS: Record<string, TestUser> = {
  alice: { email: 'alice@example.com', email_verified: true, name: 'Alice Liddell', groups: ['engineering', 'mcp-users'] },
  bob: { preferred_username: 'bob.b', email: 'bob@example.com', email_verified: false, password: 'bobs password' },
};

let ca: TestCa;
let outbound: OutboundFetch;
let callbackUrl: string;

function providerConfig(idp: OidcIdp, overrides: Partial<OidcProviderConfig> = {}): OidcProviderConfig {
  return {
    type: 'oidc',
    id: 'corp',
    displayName: 'Corp SSO',
    issuer: idp.issuer,
    clientId: idp.clientId,
    clientSecret: idp.clientSecret,
    scopes: ['openid', 'email', 'profile', 'offline_access'],
    authorizationParams: {},
    claims: {},
    clockTolerance: 30,
    ...overrides,
  };
}

/** Runs the browser from the authorization URL through the IdP login to the (unfetched) callback. */
async function loginAt(idp: OidcIdp, authorizationUrl: URL, username: string): Promise<URL> {
  const browser = new Browser({ ca: ca.caPem });
  try {
    const loginPage = await browser.goto(authorizationUrl);
    const end = await idp.signIn(browser, loginPage, username, { stopAt: callbackUrl });
    assert.ok(end.stopped, `expected to stop at the callback, got ${end.toString()}`);
    return end.url;
  } finally {
    await browser.close();
  }
}

before(async () => {
  ca = await createTestCa();
  outbound = createOutboundFetch({ extraCaPem: ca.caPem, timeoutMs: 5_000 });
  callbackUrl = `https://localhost:${await freePort()}/callback`;
});

after(async () => {
  await outbound.close();
});

describe('OidcIdentityProvider against a real IdP', () => {
  let idp: OidcIdp;

  before(async () => {
    idp = await startOidcIdp({ clientId: 'gateway-app', clientSecret: 'gateway-secret', redirectUris: [callbackUrl], users: USERS });
  });
  after(async () => {
    await idp.close();
  });

  test('full login returns the identity and the IdP tokens, refresh token included with offline_access', async () => {
    const provider = createOidcProvider(providerConfig(idp, { authorizationParams: { domain_hint: 'example.com' } }), { fetch: outbound });
    const login = newLogin();
    const authorizationUrl = await provider.authorizationUrl(login, callbackUrl);

    const sent = Object.fromEntries(authorizationUrl.searchParams);
    assert.equal(`${authorizationUrl.origin}${authorizationUrl.pathname}`, `${idp.issuer}/auth`);
    assert.deepEqual(Object.keys(sent).sort(), [
      'client_id',
      'code_challenge',
      'code_challenge_method',
      'domain_hint',
      'nonce',
      'redirect_uri',
      'response_type',
      'scope',
      'state',
    ]);
    assert.equal(sent.client_id, 'gateway-app');
    assert.equal(sent.code_challenge, await client.calculatePKCECodeChallenge(login.codeVerifier));
    assert.equal(sent.code_challenge_method, 'S256');
    assert.equal(sent.state, login.state);
    assert.equal(sent.nonce, login.nonce);
    assert.equal(sent.redirect_uri, callbackUrl);
    assert.equal(sent.scope, 'openid email profile offline_access');

    const callback = await loginAt(idp, authorizationUrl, 'alice');
    assert.ok(callback.searchParams.get('code'));
    assert.equal(callback.searchParams.get('iss'), idp.issuer, 'RFC 9207 iss in the response');

    const before = Math.floor(Date.now() / 1000);
    const result = await provider.completeLogin(callback, login, callbackUrl);
    assert.deepEqual(result.identity, {
      subject: 'alice',
      email: 'alice@example.com',
      emailVerified: true,
      name: 'Alice Liddell',
      groups: ['engineering', 'mcp-users'],
    });
    assert.ok(result.tokens.accessToken);
    assert.ok(result.tokens.refreshToken, 'offline_access gives a refresh token');
    assert.ok(result.tokens.idToken);
    assert.ok(result.tokens.expiresAt && result.tokens.expiresAt >= before && result.tokens.expiresAt <= before + 3700);
    assert.match(result.tokens.scope ?? '', /offline_access/);
  });

  test('without offline_access there is no refresh token; preferred_username stands in for name', async () => {
    const provider = createOidcProvider(providerConfig(idp, { scopes: ['openid', 'email', 'profile'] }), { fetch: outbound });
    const login = newLogin();
    const callback = await loginAt(idp, await provider.authorizationUrl(login, callbackUrl), 'bob');
    const result = await provider.completeLogin(callback, login, callbackUrl);
    assert.equal(result.tokens.refreshToken, undefined);
    assert.deepEqual(result.identity, { subject: 'bob', email: 'bob@example.com', emailVerified: false, name: 'bob.b', groups: [] });
  });

  test('the callback URL the gateway saw may differ from the registered one (proxy): the registered one is used', async () => {
    const provider = createOidcProvider(providerConfig(idp), { fetch: outbound });
    const login = newLogin();
    const callback = await loginAt(idp, await provider.authorizationUrl(login, callbackUrl), 'alice');
    const internal = new URL(`http://10.0.0.5:8080/callback${callback.search}`);
    const result = await provider.completeLogin(internal, login, callbackUrl);
    assert.equal(result.identity.subject, 'alice');
  });

  test("a callback with another login's state is refused", async () => {
    const provider = createOidcProvider(providerConfig(idp), { fetch: outbound });
    const login = newLogin();
    const callback = await loginAt(idp, await provider.authorizationUrl(login, callbackUrl), 'alice');
    await assertLoginError(provider.completeLogin(callback, { ...login, state: client.randomState() }, callbackUrl), 'server_error', /state/);
  });

  test('an ID token with another nonce is refused, the failed check named in detail only', async () => {
    const provider = createOidcProvider(providerConfig(idp), { fetch: outbound });
    const login = newLogin();
    const callback = await loginAt(idp, await provider.authorizationUrl(login, callbackUrl), 'alice');
    const otherNonce = client.randomNonce();
    const error = await assertLoginError(provider.completeLogin(callback, { ...login, nonce: otherNonce }, callbackUrl), 'server_error', /nonce/);
    assert.doesNotMatch(error.message, /nonce/, 'the public message does not say which check failed');
    assert.ok(!error.detail.includes(otherNonce) && !error.detail.includes(login.nonce), 'nonce values stay out of the logs');
  });

  test('a wrong PKCE verifier is refused by the IdP', async () => {
    const provider = createOidcProvider(providerConfig(idp), { fetch: outbound });
    const login = newLogin();
    const callback = await loginAt(idp, await provider.authorizationUrl(login, callbackUrl), 'alice');
    await assertLoginError(
      provider.completeLogin(callback, { ...login, codeVerifier: client.randomPKCECodeVerifier() }, callbackUrl),
      'server_error',
      /invalid_grant/,
    );
  });

  test('the IdP denying the user maps to access_denied', async () => {
    const provider = createOidcProvider(providerConfig(idp), { fetch: outbound });
    idp.denyAll = true;
    try {
      const login = newLogin();
      const callback = await loginAt(idp, await provider.authorizationUrl(login, callbackUrl), 'alice');
      assert.equal(callback.searchParams.get('error'), 'access_denied');
      await assertLoginError(provider.completeLogin(callback, login, callbackUrl), 'access_denied', /access_denied/);
    } finally {
      idp.denyAll = false;
    }
  });

  test('the user cancelling at the IdP maps to access_denied', async () => {
    const provider = createOidcProvider(providerConfig(idp), { fetch: outbound });
    const login = newLogin();
    const browser = new Browser({ ca: ca.caPem });
    const page = await idp.cancel(browser, await browser.goto(await provider.authorizationUrl(login, callbackUrl)), { stopAt: callbackUrl });
    await browser.close();
    assert.ok(page.stopped);
    await assertLoginError(provider.completeLogin(page.url, login, callbackUrl), 'access_denied');
  });

  test('a 5xx from the token endpoint maps to temporarily_unavailable', async () => {
    const provider = createOidcProvider(providerConfig(idp), { fetch: outbound });
    const login = newLogin();
    const callback = await loginAt(idp, await provider.authorizationUrl(login, callbackUrl), 'alice');
    idp.failWith(503, '/token');
    try {
      await assertLoginError(provider.completeLogin(callback, login, callbackUrl), 'temporarily_unavailable', /503/);
    } finally {
      idp.failWith(undefined, '/token');
    }
  });

  test('an issuer that does not match the discovered metadata fails discovery', async () => {
    const wrongHost = idp.issuer.replace('127.0.0.1', 'localhost');
    const provider = createOidcProvider(providerConfig(idp, { issuer: wrongHost }), { fetch: outbound });
    await assertLoginError(provider.authorizationUrl(newLogin(), callbackUrl), 'temporarily_unavailable', /issuer/);
  });

  test('an IdP whose client uses client_secret_post is talked to with client_secret_post', async () => {
    const postIdp = await startOidcIdp({
      clientId: 'post-app',
      clientSecret: 'post-secret',
      redirectUris: [callbackUrl],
      users: USERS,
      tokenEndpointAuthMethod: 'client_secret_post',
    });
    try {
      const provider = createOidcProvider(providerConfig(postIdp), { fetch: outbound });
      const login = newLogin();
      const callback = await loginAt(postIdp, await provider.authorizationUrl(login, callbackUrl), 'alice');
      const result = await provider.completeLogin(callback, login, callbackUrl);
      assert.equal(result.identity.subject, 'alice');
    } finally {
      await postIdp.close();
    }
  });
});

describe('an IdP that follows OIDC Core §11 strictly for offline_access', () => {
  test('gives no refresh token without prompt=consent, and one when the operator configures it', async () => {
    const idp = await startOidcIdp({
      clientId: 'strict-app',
      clientSecret: 'strict-secret',
      redirectUris: [callbackUrl],
      users: USERS,
      strictOfflineAccess: true,
    });
    try {
      const plain = createOidcProvider(providerConfig(idp), { fetch: outbound });
      let login = newLogin();
      let callback = await loginAt(idp, await plain.authorizationUrl(login, callbackUrl), 'alice');
      assert.equal((await plain.completeLogin(callback, login, callbackUrl)).tokens.refreshToken, undefined);

      const withPrompt = createOidcProvider(providerConfig(idp, { authorizationParams: { prompt: 'consent' } }), { fetch: outbound });
      login = newLogin();
      const browser = new Browser({ ca: ca.caPem });
      // prompt=consent with a live IdP session: the IdP skips the login form and consents at once.
      const first = await browser.goto(await withPrompt.authorizationUrl(login, callbackUrl));
      const end = first.stopped ? first : await idp.signIn(browser, first, 'alice', { stopAt: callbackUrl });
      await browser.close();
      callback = end.url;
      assert.ok((await withPrompt.completeLogin(callback, login, callbackUrl)).tokens.refreshToken);
    } finally {
      await idp.close();
    }
  });
});

describe('identity from userinfo when the ID token is minimal', () => {
  test('email, name and verification come from userinfo, merged with the ID token', async () => {
    const idp = await startOidcIdp({
      clientId: 'minimal-app',
      clientSecret: 'minimal-secret',
      redirectUris: [callbackUrl],
      users: USERS,
      idTokenClaims: 'minimal',
    });
    try {
      const provider = createOidcProvider(providerConfig(idp), { fetch: outbound });
      const login = newLogin();
      const callback = await loginAt(idp, await provider.authorizationUrl(login, callbackUrl), 'alice');
      const result = await provider.completeLogin(callback, login, callbackUrl);
      const idClaims = JSON.parse(Buffer.from(result.tokens.idToken!.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
      assert.equal(idClaims.email, undefined, 'the ID token itself has no email');
      assert.deepEqual(result.identity, {
        subject: 'alice',
        email: 'alice@example.com',
        emailVerified: true,
        name: 'Alice Liddell',
        groups: ['engineering', 'mcp-users'],
      });
    } finally {
      await idp.close();
    }
  });
});

describe('IdP down', () => {
  test('discovery failing at first use maps to temporarily_unavailable and is retried once the IdP is back', async () => {
    const idp = await startOidcIdp({ clientId: 'down-app', clientSecret: 'down-secret', redirectUris: [callbackUrl], users: USERS });
    try {
      await idp.stop();
      const provider = createOidcProvider(providerConfig(idp), { fetch: outbound });
      await assertLoginError(provider.authorizationUrl(newLogin(), callbackUrl), 'temporarily_unavailable', /discovery/);
      await idp.start();
      const login = newLogin();
      const callback = await loginAt(idp, await provider.authorizationUrl(login, callbackUrl), 'alice');
      assert.equal((await provider.completeLogin(callback, login, callbackUrl)).identity.subject, 'alice');
    } finally {
      await idp.close();
    }
  });

  test('the IdP going down between redirect and callback maps to temporarily_unavailable', async () => {
    const idp = await startOidcIdp({ clientId: 'down-app', clientSecret: 'down-secret', redirectUris: [callbackUrl], users: USERS });
    try {
      const provider = createOidcProvider(providerConfig(idp), { fetch: outbound });
      const login = newLogin();
      const callback = await loginAt(idp, await provider.authorizationUrl(login, callbackUrl), 'alice');
      await idp.stop();
      await assertLoginError(provider.completeLogin(callback, login, callbackUrl), 'temporarily_unavailable', /fetch failed|ECONNREFUSED/);
    } finally {
      await idp.close();
    }
  });

  test('a token endpoint that never answers times out as temporarily_unavailable', async () => {
    const idp = await startOidcIdp({ clientId: 'slow-app', clientSecret: 'slow-secret', redirectUris: [callbackUrl], users: USERS });
    const impatient = createOutboundFetch({ extraCaPem: ca.caPem, timeoutMs: 500 });
    try {
      const provider = createOidcProvider(providerConfig(idp), { fetch: impatient });
      const login = newLogin();
      const callback = await loginAt(idp, await provider.authorizationUrl(login, callbackUrl), 'alice');
      idp.hang('/token');
      const started = Date.now();
      await assertLoginError(provider.completeLogin(callback, login, callbackUrl), 'temporarily_unavailable', /timed out/);
      assert.ok(Date.now() - started < 3_000, 'the outbound deadline applies');
    } finally {
      await impatient.close();
      await idp.close();
    }
  });

  test('an IdP whose certificate is not trusted is unavailable, not a crash', async () => {
    const idp = await startOidcIdp({ clientId: 'tls-app', clientSecret: 'tls-secret', redirectUris: [callbackUrl], users: USERS });
    const untrusting = createOutboundFetch({ timeoutMs: 5_000 });
    try {
      const provider = createOidcProvider(providerConfig(idp), { fetch: untrusting });
      await assertLoginError(provider.authorizationUrl(newLogin(), callbackUrl), 'temporarily_unavailable', /certificate/i);
    } finally {
      await untrusting.close();
      await idp.close();
    }
  });
});

describe('http issuer on loopback (local development)', () => {
  test('works end to end over plain http', async () => {
    const idp = await startOidcIdp({ clientId: 'dev-app', clientSecret: 'dev-secret', redirectUris: [callbackUrl], users: USERS, insecureHttp: true });
    try {
      assert.match(idp.issuer, /^http:\/\/127\.0\.0\.1:/);
      const provider = createOidcProvider(providerConfig(idp), { fetch: outbound });
      const login = newLogin();
      const callback = await loginAt(idp, await provider.authorizationUrl(login, callbackUrl), 'alice');
      assert.equal((await provider.completeLogin(callback, login, callbackUrl)).identity.subject, 'alice');
    } finally {
      await idp.close();
    }
  });
});

describe('configuration checks at start-up', () => {
  const base: OidcProviderConfig = {
    type: 'oidc',
    id: 'corp',
    displayName: 'Corp',
    issuer: 'https://idp.example.com',
    clientId: 'app',
    clientSecret: 'secret',
    scopes: ['openid'],
    authorizationParams: {},
    claims: {},
    clockTolerance: 30,
  };

  test('an http issuer is refused unless it is loopback', () => {
    assert.throws(() => createOidcProvider({ ...base, issuer: 'http://idp.example.com' }), refusedAt('issuer'));
    assert.throws(() => createOidcProvider({ ...base, issuer: 'http://10.1.2.3:8080' }), refusedAt('issuer'));
    assert.throws(() => createOidcProvider({ ...base, issuer: 'ftp://idp.example.com' }), refusedAt('issuer'));
    for (const issuer of ['http://localhost:9000', 'http://127.0.0.1:9000', 'http://[::1]:9000', 'https://idp.example.com']) {
      assert.doesNotThrow(() => createOidcProvider({ ...base, issuer }), issuer);
    }
  });

  test('authorizationParams may not override the parameters the gateway sets', () => {
    for (const key of ['state', 'nonce', 'redirect_uri', 'code_challenge', 'client_id', 'scope', 'response_mode']) {
      assert.throws(() => createOidcProvider({ ...base, authorizationParams: { [key]: 'x' } }), refusedAt(`authorizationParams.${key}`), key);
    }
    assert.doesNotThrow(() => createOidcProvider({ ...base, authorizationParams: { prompt: 'select_account', domain_hint: 'example.com' } }));
  });

  test('scopes must include openid', () => {
    assert.throws(() => createOidcProvider({ ...base, scopes: ['email'] }), refusedAt('scopes'));
  });
});
