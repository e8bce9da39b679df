/**
 * GithubIdentityProvider against the fake GitHub (test/support/fake-github.ts) over real https with
 * the test CA, the authorization driven by the scripted browser: what the gateway sends to GitHub,
 * what it makes of GitHub's answers (form-encoded or JSON, errors with HTTP 200), and how each
 * failure reaches the MCP client.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { GithubProviderConfig } from '../../../src/config/schema/providers-oauth2.ts';
import { githubProviderSchema } from '../../../src/config/schema/providers-oauth2.ts';
import { configSchema } from '../../../src/config/schema.ts';
import type { OutboundFetch } from '../../../src/http/outbound.ts';
import { createOutboundFetch } from '../../../src/http/outbound.ts';
import { GithubIdentityProvider, githubEndpoints, withGithubOrganizationDefaults } from '../../../src/idp/github.ts';
import { parseTokenBody } from '../../../src/idp/oauth2-http.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { Browser } from '../../support/browser.ts';
import type { FakeGithub, FakeGithubUser } from '../../support/fake-github.ts';
import { startFakeGithub } from '../../support/fake-github.ts';
import { freePort } from '../../support/ports.ts';
import type { TestCa } from '../../support/tls.ts';
import { createTestCa } from '../../support/tls.ts';
import { assertLoginError, newLogin } from './login-assertions.ts';
import { refusedAt } from './refused-at.ts';

const USERS: Record<string, FakeGithubUser> = {
  octocat: {
    id: 583231,
    name: 'The Octocat',
    email: 'public-octo@example.net',
    emails: [
      { email: 'octo-old@example.org', primary: false, verified: true },
      { email: 'octocat@example.com', primary: true, verified: true, visibility: 'private' },
    ],
    orgs: ['acme', 'octo-org', 'third-org'],
    teams: ['acme/platform', 'acme/security', 'octo-org/maintainers'],
  },
  // Primary email not verified, another address verified: neither may become the identity's email.
  newbie: {
    id: 9000001,
    name: null,
    emails: [
      { email: 'newbie@example.com', primary: true, verified: false },
      { email: 'newbie-alt@example.com', primary: false, verified: true },
    ],
  },
};

let ca: TestCa;
let outbound: OutboundFetch;
let callbackUrl: string;

function providerConfig(github: FakeGithub, overrides: Partial<GithubProviderConfig> = {}): GithubProviderConfig {
  return githubProviderSchema.parse({
    type: 'github',
    clientId: github.clientId,
    clientSecret: github.clientSecret,
    baseUrl: github.origin,
    apiUrl: github.apiUrl,
    ...overrides,
  });
}

/** Browser from the authorization URL through GitHub's Authorize page to the (unfetched) callback. */
async function authorizeAt(github: FakeGithub, authorizationUrl: URL, login: string, decision: 'approve' | 'cancel' = 'approve'): Promise<URL> {
  const browser = new Browser({ ca: ca.caPem });
  try {
    const page = await browser.goto(authorizationUrl, { stopAt: callbackUrl });
    const end = page.stopped
      ? page
      : decision === 'approve'
        ? await github.approve(browser, page, login, { stopAt: callbackUrl })
        : await github.cancel(browser, page, { stopAt: callbackUrl });
    assert.ok(end.stopped, `expected to stop at the callback, got ${end.toString()}`);
    return end.url;
  } finally {
    await browser.close();
  }
}

async function signIn(github: FakeGithub, provider: GithubIdentityProvider, login = 'octocat') {
  const state = newLogin();
  const callback = await authorizeAt(github, await provider.authorizationUrl(state, callbackUrl), login);
  return provider.completeLogin(callback, state, callbackUrl);
}

function capturingLogger(): { logger: ReturnType<typeof createLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: createLogger('info', stream), lines };
}

before(async () => {
  ca = await createTestCa();
  outbound = createOutboundFetch({ extraCaPem: ca.caPem, timeoutMs: 5_000 });
  callbackUrl = `http://localhost:${await freePort()}/callback`;
});

after(async () => {
  await outbound.close();
});

describe('GitHub provider configuration', () => {
  test('github.com endpoints by default, GHES endpoints under the configured base URL', () => {
    assert.deepEqual(githubEndpoints({ baseUrl: 'https://github.com' }), { webUrl: 'https://github.com', apiUrl: 'https://api.github.com' });
    assert.deepEqual(githubEndpoints({ baseUrl: 'https://ghe.example.com/' }), { webUrl: 'https://ghe.example.com', apiUrl: 'https://ghe.example.com/api/v3' });
    const provider = new GithubIdentityProvider(
      githubProviderSchema.parse({ type: 'github', clientId: 'id', clientSecret: 's', baseUrl: 'https://ghe.example.com' }),
    );
    assert.deepEqual(provider.endpoints, {
      authorizationUrl: 'https://ghe.example.com/login/oauth/authorize',
      tokenUrl: 'https://ghe.example.com/login/oauth/access_token',
      apiUrl: 'https://ghe.example.com/api/v3',
    });
  });

  test('the schema fills defaults and refuses insecure or malformed URLs and ids', () => {
    const parsed = configSchema.parse({ identityProviders: [{ type: 'github', clientId: 'Iv1.x', clientSecret: 'secret' }] });
    const github = parsed.identityProviders?.[0];
    assert.equal(github?.type, 'github');
    assert.equal(github?.id, 'github');
    assert.equal(github?.displayName, 'GitHub');
    assert.equal(github?.type === 'github' ? github.baseUrl : undefined, 'https://github.com');
    for (const bad of [{ baseUrl: 'http://ghe.example.com' }, { apiUrl: 'https://user:pw@ghe.example.com/api/v3' }, { id: 'GitHub' }, { clientSecret: '' }]) {
      const result = configSchema.safeParse({ identityProviders: [{ type: 'github', clientId: 'Iv1.x', clientSecret: 'secret', ...bad }] });
      assert.equal(result.success, false, JSON.stringify(bad));
    }
    assert.equal(
      configSchema.safeParse({ identityProviders: [{ type: 'github', clientId: 'x', clientSecret: 's', baseUrl: 'http://127.0.0.1:9999' }] }).success,
      true,
      'http on loopback',
    );
  });

  test("authorizationParams may not replace the gateway's own parameters", () => {
    assert.throws(
      () =>
        new GithubIdentityProvider(
          githubProviderSchema.parse({
            type: 'github',
            clientId: 'x',
            clientSecret: 's',
            authorizationParams: { state: 'fixed', code_challenge_method: 'plain' },
          }),
        ),
      (error: unknown) => refusedAt('authorizationParams.state')(error) && refusedAt('authorizationParams.code_challenge_method')(error),
    );
  });

  test('fetchOrganizations defaults to on only when an access rule names GitHub orgs or teams', () => {
    const providers = configSchema.parse({
      identityProviders: [
        { type: 'github', clientId: 'x', clientSecret: 's' },
        { type: 'github', id: 'ghe', clientId: 'y', clientSecret: 's', fetchOrganizations: false },
      ],
    });
    const none = withGithubOrganizationDefaults(providers.identityProviders!, providers);
    assert.deepEqual(
      none.map((p) => p.type === 'github' && p.fetchOrganizations),
      [false, false],
    );
    const withRule = configSchema.parse({
      identityProviders: providers.identityProviders,
      servers: [{ name: 'a', path: '/a', upstream: { url: 'http://127.0.0.1:1/mcp' }, access: { githubTeams: ['acme/platform'] } }],
    });
    assert.deepEqual(
      withGithubOrganizationDefaults(withRule.identityProviders!, withRule).map((p) => p.type === 'github' && p.fetchOrganizations),
      [true, false],
      'an explicit false is kept',
    );
  });
});

describe('GitHub provider against the fake GitHub (github.com layout)', () => {
  let github: FakeGithub;

  before(async () => {
    // maxPerPage 2: three orgs and three teams take two pages each.
    github = await startFakeGithub({ clientId: 'Ov23liGatewayApp', clientSecret: 'gh-app-secret-0123456789', callbackUrl, users: USERS, maxPerPage: 2 });
  });
  after(async () => {
    await github.close();
  });

  test('login: PKCE S256 and state upstream, numeric id as subject, verified primary email, no org calls', async () => {
    const provider = new GithubIdentityProvider(providerConfig(github, { authorizationParams: { allow_signup: 'false' } }), { fetch: outbound });
    const login = newLogin();
    const authorizationUrl = await provider.authorizationUrl(login, callbackUrl);
    assert.equal(`${authorizationUrl.origin}${authorizationUrl.pathname}`, `${github.origin}/login/oauth/authorize`);
    const sent = Object.fromEntries(authorizationUrl.searchParams);
    assert.deepEqual(sent, {
      allow_signup: 'false',
      client_id: github.clientId,
      redirect_uri: callbackUrl,
      scope: 'read:user user:email',
      state: login.state,
      code_challenge: createHash('sha256').update(login.codeVerifier).digest('base64url'),
      code_challenge_method: 'S256',
    });

    const start = github.requests.length;
    const callback = await authorizeAt(github, authorizationUrl, 'octocat');
    assert.equal(callback.searchParams.get('state'), login.state);
    const result = await provider.completeLogin(callback, login, callbackUrl);
    assert.deepEqual(result.identity, {
      subject: '583231',
      name: 'The Octocat',
      email: 'octocat@example.com',
      emailVerified: true,
      groups: [],
    });
    assert.match(result.tokens.accessToken ?? '', /^gho_/);
    assert.equal(result.tokens.refreshToken, undefined, 'no refresh token without expiring user tokens');
    assert.equal(result.tokens.expiresAt, undefined, 'OAuth app tokens do not expire');
    assert.equal(result.tokens.scope, 'read:user user:email', "GitHub's comma-separated scope normalised");

    const calls = github.requests.slice(start);
    const tokenRequest = calls.find((request) => request.path === '/login/oauth/access_token');
    assert.ok(tokenRequest);
    assert.equal(tokenRequest.headers.accept, 'application/json');
    const form = new URLSearchParams(tokenRequest.body);
    assert.equal(form.get('client_id'), github.clientId);
    assert.equal(form.get('code_verifier'), login.codeVerifier);
    assert.equal(form.get('redirect_uri'), callbackUrl);
    const apiCalls = calls.filter((request) => request.path.startsWith('/user'));
    assert.deepEqual(
      apiCalls.map((request) => request.path),
      ['/user', '/user/emails'],
      'orgs and teams are not read unless configured',
    );
    for (const call of apiCalls) {
      assert.equal(call.headers.authorization, `Bearer ${result.tokens.accessToken}`);
      assert.equal(call.headers.accept, 'application/vnd.github+json');
      assert.ok(call.headers['user-agent'], 'GitHub refuses API calls without a User-Agent');
    }
  });

  test('an unverified primary email gives no email at all; the login is the name when there is none', async () => {
    const provider = new GithubIdentityProvider(providerConfig(github), { fetch: outbound });
    const result = await signIn(github, provider, 'newbie');
    assert.deepEqual(result.identity, { subject: '9000001', name: 'newbie', groups: [] });
  });

  test('fetchOrganizations: read:org is requested and every page of orgs and teams is read', async () => {
    const provider = new GithubIdentityProvider(providerConfig(github, { fetchOrganizations: true }), { fetch: outbound });
    const login = newLogin();
    const authorizationUrl = await provider.authorizationUrl(login, callbackUrl);
    assert.equal(authorizationUrl.searchParams.get('scope'), 'read:user user:email read:org');
    const start = github.requests.length;
    const result = await provider.completeLogin(await authorizeAt(github, authorizationUrl, 'octocat'), login, callbackUrl);
    assert.deepEqual(result.identity.organizations, ['acme', 'octo-org', 'third-org']);
    assert.deepEqual(result.identity.teams, ['acme/platform', 'acme/security', 'octo-org/maintainers']);
    const pages = github.requests
      .slice(start)
      .filter((request) => request.path === '/user/orgs')
      .map((request) => request.query.get('page') ?? '1');
    assert.deepEqual(pages, ['1', '2'], 'the fake serves 2 per page: the Link rel="next" was followed');
  });

  test('without user:email the login succeeds without an email, and the operator is told why', async () => {
    const { logger, lines } = capturingLogger();
    const provider = new GithubIdentityProvider(providerConfig(github, { scopes: ['read:user'] }), { fetch: outbound, logger });
    const result = await signIn(github, provider);
    assert.equal(result.identity.subject, '583231');
    assert.equal(result.identity.email, undefined);
    assert.ok(lines.some((line) => line.event === 'idp.github.email_unavailable' && /user:email/.test(String(line.msg))));
  });

  test('organisations configured but read:org not granted: a server_error naming the missing scope', async () => {
    const { logger, lines } = capturingLogger();
    const provider = new GithubIdentityProvider(providerConfig(github, { fetchOrganizations: true, scopes: ['read:user', 'user:email'] }), {
      fetch: outbound,
      logger,
    });
    await assertLoginError(signIn(github, provider), 'server_error', /GET \/user\/(orgs|teams) answered 403.*read:org/);
    assert.ok(lines.some((line) => line.event === 'idp.github.orgs_unavailable'));
  });

  test('the user pressing Cancel on GitHub is access_denied', async () => {
    const provider = new GithubIdentityProvider(providerConfig(github), { fetch: outbound });
    const login = newLogin();
    const callback = await authorizeAt(github, await provider.authorizationUrl(login, callbackUrl), 'octocat', 'cancel');
    assert.equal(callback.searchParams.get('error'), 'access_denied');
    await assertLoginError(provider.completeLogin(callback, login, callbackUrl), 'access_denied', /error=access_denied/);
  });

  test("a code used twice is GitHub's 200 bad_verification_code: server_error, not a success", async () => {
    const provider = new GithubIdentityProvider(providerConfig(github), { fetch: outbound });
    const login = newLogin();
    const callback = await authorizeAt(github, await provider.authorizationUrl(login, callbackUrl), 'octocat');
    await provider.completeLogin(callback, login, callbackUrl);
    await assertLoginError(provider.completeLogin(callback, login, callbackUrl), 'server_error', /answered 200 error=bad_verification_code/);
  });

  test('a wrong PKCE verifier is refused by GitHub', async () => {
    const provider = new GithubIdentityProvider(providerConfig(github), { fetch: outbound });
    const login = newLogin();
    const callback = await authorizeAt(github, await provider.authorizationUrl(login, callbackUrl), 'octocat');
    await assertLoginError(
      provider.completeLogin(callback, { ...login, codeVerifier: randomBytes(48).toString('base64url') }, callbackUrl),
      'server_error',
      /bad_verification_code/,
    );
  });

  test("a callback whose state is not the pending login's is refused before any token request", async () => {
    const provider = new GithubIdentityProvider(providerConfig(github), { fetch: outbound });
    const login = newLogin();
    const callback = await authorizeAt(github, await provider.authorizationUrl(login, callbackUrl), 'octocat');
    const start = github.requests.length;
    await assertLoginError(provider.completeLogin(callback, { ...login, state: 'another' }, callbackUrl), 'server_error', /state/);
    assert.equal(github.requests.length, start);
  });

  test('a wrong client secret is incorrect_client_credentials: server_error, and an error log for the operator', async () => {
    const { logger, lines } = capturingLogger();
    const provider = new GithubIdentityProvider(providerConfig(github, { clientSecret: 'not-the-secret' }), { fetch: outbound, logger });
    const error = await assertLoginError(signIn(github, provider), 'server_error', /incorrect_client_credentials.*clientSecret/);
    assert.doesNotMatch(error.message, /secret/i, 'the client-facing message names no configuration');
    const logged = lines.find((line) => line.event === 'idp.misconfigured');
    assert.ok(logged, 'an operator-facing log line');
    assert.equal(logged.level, 50);
    assert.doesNotMatch(JSON.stringify(lines), /not-the-secret/, 'the secret is never logged');
  });

  test('a redirect URI GitHub does not accept comes back as redirect_uri_mismatch with advice', async () => {
    const provider = new GithubIdentityProvider(providerConfig(github), { fetch: outbound });
    const login = newLogin();
    const elsewhere = 'http://localhost:1/elsewhere';
    const browser = new Browser({ ca: ca.caPem });
    const page = await browser.goto(await provider.authorizationUrl(login, elsewhere), { stopAt: callbackUrl });
    await browser.close();
    assert.ok(page.stopped, 'GitHub sends the error to the registered callback');
    await assertLoginError(
      provider.completeLogin(page.url, login, elsewhere),
      'server_error',
      /redirect_uri_mismatch.*register http:\/\/localhost:1\/elsewhere/,
    );
  });

  test('rate limits and GitHub outages are temporarily_unavailable', async () => {
    const provider = new GithubIdentityProvider(providerConfig(github), { fetch: outbound });
    for (const [arrange, detail] of [
      [() => github.rateLimit('/user'), /GET \/user answered 403.*rate limit exhausted/],
      [() => github.rateLimit('/login/oauth/access_token'), /token endpoint answered 429/],
      [() => github.failWith(502, '/login/oauth/access_token'), /token endpoint answered 502/],
      [() => github.failWith(503, '/user/emails'), /GET \/user\/emails answered 503/],
    ] as const) {
      const login = newLogin();
      const callback = await authorizeAt(github, await provider.authorizationUrl(login, callbackUrl), 'octocat');
      arrange();
      try {
        await assertLoginError(provider.completeLogin(callback, login, callbackUrl), 'temporarily_unavailable', detail);
      } finally {
        github.rateLimit(undefined);
        github.failWith(undefined);
      }
    }
  });

  test('GitHub unreachable is temporarily_unavailable', async () => {
    const provider = new GithubIdentityProvider(providerConfig(github, { baseUrl: `https://127.0.0.1:${await freePort()}` }), { fetch: outbound });
    const login = newLogin();
    await assertLoginError(
      provider.completeLogin(new URL(`${callbackUrl}?code=abc&state=${login.state}`), login, callbackUrl),
      'temporarily_unavailable',
      /request failed/,
    );
  });

  test("GitHub's default token answer is form-encoded, and it is understood", async () => {
    const response = await outbound(`${github.origin}/login/oauth/access_token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: github.clientId, client_secret: github.clientSecret, code: 'nope' }).toString(),
    });
    assert.equal(response.status, 200, 'GitHub reports errors with HTTP 200');
    assert.match(response.headers.get('content-type') ?? '', /^application\/x-www-form-urlencoded/);
    const parsed = parseTokenBody(await response.text(), response.headers.get('content-type'));
    assert.equal(parsed?.error, 'bad_verification_code');
    assert.deepEqual(parseTokenBody('access_token=gho_x&scope=read%3Aorg%2Cuser%3Aemail&token_type=bearer', 'text/plain'), {
      access_token: 'gho_x',
      scope: 'read:org,user:email',
      token_type: 'bearer',
    });
    assert.equal(parseTokenBody('<html>oops</html>', 'text/html'), undefined);
  });
});

describe('GitHub provider: expiring user tokens and GitHub Enterprise Server', () => {
  let github: FakeGithub;

  before(async () => {
    github = await startFakeGithub({
      clientId: 'Iv23liGhesApp',
      clientSecret: 'ghes-secret-0123456789',
      callbackUrl,
      users: USERS,
      layout: 'enterprise',
      expiringTokens: true,
    });
  });
  after(async () => {
    await github.close();
  });

  test('GHES: only baseUrl is configured; the API is found under /api/v3', async () => {
    const provider = new GithubIdentityProvider(providerConfig(github, { apiUrl: undefined, fetchOrganizations: true }), { fetch: outbound });
    assert.equal(provider.endpoints.apiUrl, `${github.origin}/api/v3`);
    const start = github.requests.length;
    const result = await signIn(github, provider);
    assert.equal(result.identity.subject, '583231');
    assert.deepEqual(result.identity.teams, ['acme/platform', 'acme/security', 'octo-org/maintainers']);
    assert.ok(github.requests.slice(start).some((request) => request.path === '/api/v3/user'));
  });

  test('expiring tokens: refresh token and expiry stored; refresh rotates; a spent refresh token means sign in again', async () => {
    const provider = new GithubIdentityProvider(providerConfig(github, { apiUrl: undefined }), { fetch: outbound });
    const before = Math.floor(Date.now() / 1000);
    const { tokens } = await signIn(github, provider);
    assert.match(tokens.accessToken ?? '', /^ghu_/);
    assert.match(tokens.refreshToken ?? '', /^ghr_/);
    assert.ok(tokens.expiresAt && tokens.expiresAt >= before + 28_800 && tokens.expiresAt <= before + 28_802);

    const refreshed = await provider.refresh(tokens);
    assert.match(refreshed.accessToken ?? '', /^ghu_/);
    assert.notEqual(refreshed.accessToken, tokens.accessToken);
    assert.ok(refreshed.refreshToken && refreshed.refreshToken !== tokens.refreshToken, 'GitHub rotates the refresh token');
    const refreshRequest = github.requests.findLast((request) => request.path === '/login/oauth/access_token');
    assert.equal(new URLSearchParams(refreshRequest?.body).get('grant_type'), 'refresh_token');

    await assertLoginError(provider.refresh(tokens), 'access_denied', /bad_refresh_token/);
    await assertLoginError(provider.refresh({ accessToken: 'gho_x' }), 'access_denied', /no GitHub refresh token/);
  });

  test('a refresh with wrong client credentials is a server_error, not "sign in again"', async () => {
    const provider = new GithubIdentityProvider(providerConfig(github, { apiUrl: undefined }), { fetch: outbound });
    const { tokens } = await signIn(github, provider);
    const misconfigured = new GithubIdentityProvider(providerConfig(github, { apiUrl: undefined, clientSecret: 'wrong' }), { fetch: outbound });
    await assertLoginError(misconfigured.refresh(tokens), 'server_error', /incorrect_client_credentials/);
    github.failWith(500, '/login/oauth/access_token');
    try {
      await assertLoginError(provider.refresh(tokens), 'temporarily_unavailable', /answered 500/);
    } finally {
      github.failWith(undefined);
    }
  });
});
