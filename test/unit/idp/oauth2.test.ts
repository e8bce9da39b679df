/**
 * OAuth2IdentityProvider (generic OAuth 2 with explicit endpoints and claim mapping) over real https:
 * against a real oidc-provider used as a plain OAuth 2 server (its /auth, /token and /me endpoints,
 * no ID token validation, claims nested in the userinfo document), and against the fake GitHub (a
 * token endpoint that answers form-encoded and reports errors with HTTP 200, numeric user ids).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { OAuth2ProviderConfig } from '../../../src/config/schema/providers-oauth2.ts';
import { oauth2ProviderSchema } from '../../../src/config/schema/providers-oauth2.ts';
import { configSchema } from '../../../src/config/schema.ts';
import type { OutboundFetch } from '../../../src/http/outbound.ts';
import { createOutboundFetch } from '../../../src/http/outbound.ts';
import { OAuth2IdentityProvider } from '../../../src/idp/oauth2.ts';
import { booleanFrom, groupsFrom, subjectFrom, valueAtPath } from '../../../src/idp/oauth2-claims.ts';
import type { IdpLoginState } from '../../../src/idp/types.ts';
import { Browser } from '../../support/browser.ts';
import type { FakeGithub } from '../../support/fake-github.ts';
import { startFakeGithub } from '../../support/fake-github.ts';
import type { OidcIdp } from '../../support/oidc-idp.ts';
import { startOidcIdp } from '../../support/oidc-idp.ts';
import { freePort } from '../../support/ports.ts';
import type { TestCa } from '../../support/tls.ts';
import { createTestCa } from '../../support/tls.ts';
import { assertLoginError, newLogin } from './login-assertions.ts';
import { refusedAt } from './refused-at.ts';

let ca: TestCa;
let outbound: OutboundFetch;
let callbackUrl: string;

before(async () => {
  ca = await createTestCa();
  outbound = createOutboundFetch({ extraCaPem: ca.caPem, timeoutMs: 5_000 });
  callbackUrl = `http://localhost:${await freePort()}/callback`;
});

after(async () => {
  await outbound.close();
});

describe('claim paths', () => {
  const document = {
    sub: 'x',
    id: 42,
    data: { attributes: { email: 'a@example.com', verified: 'true' } },
    roles: [{ name: 'admins' }, { displayName: 'ops' }, 7],
    list: ['a', ''],
  };

  test('dot paths read nested values, array indexes, and never Object internals', () => {
    assert.equal(valueAtPath(document, 'data.attributes.email'), 'a@example.com');
    assert.equal(valueAtPath(document, 'list.0'), 'a');
    assert.equal(valueAtPath(document, 'data.missing.email'), undefined);
    assert.equal(valueAtPath(document, 'constructor'), undefined);
    assert.equal(valueAtPath(document, '__proto__.toString'), undefined);
    assert.equal(valueAtPath(document, 'list.length'), undefined);
  });

  test('values are converted the way identities need them', () => {
    assert.equal(subjectFrom(42), '42');
    assert.equal(subjectFrom('abc'), 'abc');
    assert.equal(subjectFrom(''), undefined);
    assert.equal(subjectFrom(1.5), undefined);
    assert.equal(subjectFrom({ id: 1 }), undefined);
    assert.equal(booleanFrom('true'), true);
    assert.equal(booleanFrom('yes'), undefined);
    assert.deepEqual(groupsFrom(document.roles), ['admins', 'ops', '7'], 'numeric group ids as text');
    assert.deepEqual(groupsFrom('a, b c'), ['a', 'b', 'c']);
    assert.deepEqual(groupsFrom(document.list), ['a']);
    assert.deepEqual(groupsFrom(undefined), []);
  });
});

describe('generic OAuth 2 configuration', () => {
  const base = {
    type: 'oauth2',
    authorizationUrl: 'https://idp.example.com/authorize',
    tokenUrl: 'https://idp.example.com/token',
    userinfoUrl: 'https://idp.example.com/me',
    clientId: 'gw',
  };

  test('defaults: PKCE on, standard claim paths, basic auth with a secret and none without', async () => {
    const parsed = configSchema.parse({ identityProviders: [{ ...base, clientSecret: 's' }] }).identityProviders?.[0];
    assert.ok(parsed?.type === 'oauth2');
    assert.equal(parsed.id, 'oauth2');
    assert.equal(parsed.pkce, true);
    assert.deepEqual(parsed.claims, { subject: 'sub', email: 'email', name: 'name', groups: 'groups' });
    const provider = new OAuth2IdentityProvider(oauth2ProviderSchema.parse({ ...base, scopes: ['read', 'profile'], authorizationParams: { audience: 'api' } }));
    const login = newLogin();
    const url = await provider.authorizationUrl(login, callbackUrl);
    assert.deepEqual(Object.fromEntries(url.searchParams), {
      audience: 'api',
      response_type: 'code',
      client_id: 'gw',
      redirect_uri: callbackUrl,
      scope: 'read profile',
      state: login.state,
      code_challenge: createHash('sha256').update(login.codeVerifier).digest('base64url'),
      code_challenge_method: 'S256',
    });
  });

  test('refuses configurations that would weaken the flow', () => {
    for (const [config, keyPath] of [
      [{ ...base, tokenEndpointAuthMethod: 'client_secret_post' }, 'clientSecret'],
      [{ ...base, pkce: false }, 'pkce'],
      [{ ...base, clientSecret: 's', authorizationParams: { redirect_uri: 'https://evil.example' } }, 'authorizationParams.redirect_uri'],
    ] as const) {
      assert.throws(() => new OAuth2IdentityProvider(oauth2ProviderSchema.parse(config)), refusedAt(keyPath));
    }
    for (const bad of [{ tokenUrl: 'http://idp.example.com/token' }, { claims: { subject: 'a..b' } }, { tokenEndpointAuthMethod: 'private_key_jwt' }]) {
      assert.equal(configSchema.safeParse({ identityProviders: [{ ...base, clientSecret: 's', ...bad }] }).success, false, JSON.stringify(bad));
    }
  });
});

describe('generic OAuth 2 against a real OAuth 2 server (oidc-provider, userinfo with nested claims)', () => {
  let idp: OidcIdp;

  const config = (overrides: Partial<OAuth2ProviderConfig> = {}): OAuth2ProviderConfig =>
    oauth2ProviderSchema.parse({
      type: 'oauth2',
      id: 'corp',
      authorizationUrl: `${idp.issuer}/auth`,
      tokenUrl: `${idp.issuer}/token`,
      userinfoUrl: `${idp.issuer}/me`,
      clientId: idp.clientId,
      clientSecret: idp.clientSecret,
      scopes: ['openid', 'offline_access'],
      claims: {
        subject: 'account.id',
        email: 'account.contact.mail',
        emailVerified: 'account.contact.verified',
        name: 'account.displayName',
        groups: 'account.roles',
      },
      ...overrides,
    });

  async function signIn(provider: OAuth2IdentityProvider, username: string) {
    const login = newLogin();
    const browser = new Browser({ ca: ca.caPem });
    try {
      const page = await browser.goto(await provider.authorizationUrl(login, callbackUrl));
      const end = await idp.signIn(browser, page, username, { stopAt: callbackUrl });
      assert.ok(end.stopped, end.toString());
      return await provider.completeLogin(end.url, login, callbackUrl);
    } finally {
      await browser.close();
    }
  }

  before(async () => {
    idp = await startOidcIdp({
      clientId: 'generic-app',
      clientSecret: 'generic-secret-0123456789',
      redirectUris: [callbackUrl],
      // Everything rides with `openid`, so userinfo has the nested `account` document.
      claims: { openid: ['sub', 'account'] },
      users: {
        carol: {
          account: {
            id: 'acct-1001',
            displayName: 'Carol C',
            contact: { mail: 'carol@example.com', verified: true },
            roles: [{ name: 'mcp-admins' }, { name: 'staff' }],
          },
        },
        dave: { account: { id: 1002, contact: { mail: 'dave@example.com', verified: false }, roles: 'staff' } },
        nobody: { account: { displayName: 'No Id' } },
      },
    });
  });
  after(async () => {
    await idp.close();
  });

  test('login with client_secret_basic and PKCE; identity from the mapped userinfo claims', async () => {
    const provider = new OAuth2IdentityProvider(config(), { fetch: outbound });
    const result = await signIn(provider, 'carol');
    assert.deepEqual(result.identity, {
      subject: 'acct-1001',
      email: 'carol@example.com',
      emailVerified: true,
      name: 'Carol C',
      groups: ['mcp-admins', 'staff'],
    });
    assert.ok(result.tokens.accessToken);
    assert.ok(result.tokens.refreshToken, 'offline_access gives a refresh token');
    assert.equal(result.tokens.idToken, undefined, 'plain OAuth 2: the ID token is not kept');
    const authorization = idp.authorizationRequests.at(-1);
    assert.equal(authorization?.get('code_challenge_method'), 'S256', 'PKCE (the server requires it)');

    const refreshed = await provider.refresh(result.tokens);
    assert.ok(refreshed.accessToken && refreshed.accessToken !== result.tokens.accessToken);
    await assertLoginError(provider.refresh({ refreshToken: 'not-a-refresh-token' }), 'access_denied', /invalid_grant/);
  });

  test('a numeric subject becomes text; an unverified email stays unverified; a missing subject is refused', async () => {
    const provider = new OAuth2IdentityProvider(config(), { fetch: outbound });
    const dave = await signIn(provider, 'dave');
    assert.deepEqual(dave.identity, { subject: '1002', email: 'dave@example.com', emailVerified: false, groups: ['staff'] });
    await assertLoginError(signIn(provider, 'nobody'), 'server_error', /no usable subject at "account.id"/);
  });

  test('without an emailVerified path the email is never treated as verified', async () => {
    const provider = new OAuth2IdentityProvider(config({ claims: { subject: 'account.id', email: 'account.contact.mail', name: 'name', groups: 'groups' } }), {
      fetch: outbound,
    });
    const result = await signIn(provider, 'carol');
    assert.equal(result.identity.email, 'carol@example.com');
    assert.equal(result.identity.emailVerified, false);
  });

  test('the wrong client authentication method is a server_error naming the setting', async () => {
    const provider = new OAuth2IdentityProvider(config({ tokenEndpointAuthMethod: 'client_secret_post' }), { fetch: outbound });
    await assertLoginError(signIn(provider, 'carol'), 'server_error', /invalid_client.*tokenEndpointAuthMethod/);
  });

  test('userinfo down is temporarily_unavailable; callback errors are mapped', async () => {
    const provider = new OAuth2IdentityProvider(config(), { fetch: outbound });
    idp.failWith(503, '/me');
    try {
      await assertLoginError(signIn(provider, 'carol'), 'temporarily_unavailable', /userinfo answered 503/);
    } finally {
      idp.failWith(undefined);
    }
    const login = newLogin();
    await assertLoginError(provider.completeLogin(new URL(`${callbackUrl}?error=access_denied&state=${login.state}`), login, callbackUrl), 'access_denied');
    await assertLoginError(
      provider.completeLogin(new URL(`${callbackUrl}?error=temporarily_unavailable&state=${login.state}`), login, callbackUrl),
      'temporarily_unavailable',
    );
    await assertLoginError(
      provider.completeLogin(new URL(`${callbackUrl}?error=invalid_scope&state=${login.state}`), login, callbackUrl),
      'server_error',
      /invalid_scope/,
    );
  });
});

describe('generic OAuth 2 against a form-encoding, error-as-200 token endpoint (the fake GitHub)', () => {
  let github: FakeGithub;

  before(async () => {
    github = await startFakeGithub({
      clientId: 'legacy-app',
      clientSecret: 'legacy-secret-0123456789',
      callbackUrl,
      users: { octo: { id: 77, name: 'Octo', email: 'octo@example.com' } },
    });
  });
  after(async () => {
    await github.close();
  });

  const config = (overrides: Partial<OAuth2ProviderConfig> = {}) =>
    oauth2ProviderSchema.parse({
      type: 'oauth2',
      id: 'legacy',
      authorizationUrl: `${github.origin}/login/oauth/authorize`,
      tokenUrl: `${github.origin}/login/oauth/access_token`,
      userinfoUrl: `${github.apiUrl}/user`,
      clientId: github.clientId,
      clientSecret: github.clientSecret,
      tokenEndpointAuthMethod: 'client_secret_post',
      scopes: ['read:user'],
      claims: { subject: 'id', email: 'email', name: 'name', groups: 'groups' },
      ...overrides,
    });

  async function authorize(provider: OAuth2IdentityProvider, login: IdpLoginState): Promise<URL> {
    const browser = new Browser({ ca: ca.caPem });
    try {
      const page = await browser.goto(await provider.authorizationUrl(login, callbackUrl));
      const end = await github.approve(browser, page, 'octo', { stopAt: callbackUrl });
      assert.ok(end.stopped, end.toString());
      return end.url;
    } finally {
      await browser.close();
    }
  }

  test('client_secret_post; a numeric id as subject; the public profile email is unverified', async () => {
    const provider = new OAuth2IdentityProvider(config(), { fetch: outbound });
    const login = newLogin();
    const result = await provider.completeLogin(await authorize(provider, login), login, callbackUrl);
    assert.deepEqual(result.identity, { subject: '77', email: 'octo@example.com', emailVerified: false, name: 'Octo', groups: [] });
    const token = github.requests.findLast((request) => request.path === '/login/oauth/access_token');
    assert.equal(new URLSearchParams(token?.body).get('client_secret'), github.clientSecret);
    assert.equal(token?.headers.authorization, undefined);
  });

  test('client_secret_basic works where the server accepts it', async () => {
    const provider = new OAuth2IdentityProvider(config({ tokenEndpointAuthMethod: 'client_secret_basic' }), { fetch: outbound });
    const login = newLogin();
    const result = await provider.completeLogin(await authorize(provider, login), login, callbackUrl);
    assert.equal(result.identity.subject, '77');
    const token = github.requests.findLast((request) => request.path === '/login/oauth/access_token');
    assert.match(token?.headers.authorization ?? '', /^Basic /);
    assert.equal(new URLSearchParams(token?.body).get('client_secret'), null, 'the secret is not sent twice');
  });

  test('an error reported with HTTP 200 is an error, not a token', async () => {
    const provider = new OAuth2IdentityProvider(config(), { fetch: outbound });
    const login = newLogin();
    const callback = await authorize(provider, login);
    await provider.completeLogin(callback, login, callbackUrl);
    await assertLoginError(provider.completeLogin(callback, login, callbackUrl), 'server_error', /answered 200 error=bad_verification_code/);
  });
});
