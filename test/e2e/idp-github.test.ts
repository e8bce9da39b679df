/**
 * GitHub as the gateway's identity provider, end to end: the official MCP SDK client registers, the
 * scripted browser approves the consent page and authorizes the app on the fake GitHub
 * (test/support/fake-github.ts, https with the test CA), and the client calls tools. Checks the user id
 * (`github:<numeric id>`), the email only when GitHub verified it, organisations and teams on the
 * stored user record and in `githubOrgs` access rules, and the refresh of expiring user tokens through
 * the IdP token source.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { githubProviderSchema } from '../../src/config/schema/providers-oauth2.ts';
import type { OutboundFetch } from '../../src/http/outbound.ts';
import { createOutboundFetch } from '../../src/http/outbound.ts';
import { GithubIdentityProvider } from '../../src/idp/github.ts';
import { createIdpTokenSource } from '../../src/idp/idp-tokens.ts';
import type { IdpTokens } from '../../src/idp/types.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { NS, type UserRecord } from '../../src/storage/records.ts';
import { SecretBox } from '../../src/storage/secret-box.ts';
import { Browser } from '../support/browser.ts';
import type { FakeGithub, FakeGithubUser } from '../support/fake-github.ts';
import { startFakeGithub } from '../support/fake-github.ts';
import { AuthorizationRedirectError, connectWithLogin, TestOAuthClientProvider } from '../support/mcp-client.ts';
import { createTestCa } from '../support/tls.ts';
import { type Stack, startStack } from './stack.ts';

const GITHUB_USERS: Record<string, FakeGithubUser> = {
  octocat: {
    id: 583231,
    name: 'The Octocat',
    emails: [{ email: 'octocat@example.com', primary: true, verified: true }],
    orgs: ['acme', 'octo-org'],
    teams: ['acme/platform', 'octo-org/maintainers'],
  },
  newbie: {
    id: 9000001,
    name: 'New Person',
    email: 'newbie@example.com',
    emails: [{ email: 'newbie@example.com', primary: true, verified: false }],
    orgs: ['octo-org'],
  },
};

const ENCRYPTION_KEY = randomBytes(32).toString('base64');

/** A stack whose only identity provider is the fake GitHub; `/acme` admits members of the acme org only. */
async function githubStack(github: FakeGithub): Promise<Stack> {
  return startStack({
    extraServers: [
      { name: 'acme', path: '/acme', upstream: { url: 'demo' }, access: { githubOrgs: ['ACME'] }, identityHeaders: { subject: 'x-user-id' } },
      // Hands the user's own GitHub token to the MCP server (the demo's whoami shows x-user-* headers).
      {
        name: 'handover',
        path: '/handover',
        upstream: { url: 'demo' },
        identityHeaders: { subject: 'x-user-id' },
        idpToken: { header: 'x-user-github-token' },
      },
    ],
    configure(config) {
      github.callbackUrl = `${config.publicUrl}/callback`;
      config.secrets = { encryptionKeys: [ENCRYPTION_KEY] };
      config.identityProviders = [
        {
          type: 'github',
          clientId: github.clientId,
          clientSecret: github.clientSecret,
          baseUrl: github.origin,
          apiUrl: github.apiUrl,
          fetchOrganizations: true,
        },
      ];
    },
  });
}

/** Consent at the gateway, then "Authorize" on GitHub as `login`; returns where the client was sent back. */
async function githubLogin(stack: Stack, github: FakeGithub, provider: TestOAuthClientProvider, login: string, mcpPath = '/mcp') {
  const browser = new Browser({ ca: stack.ca.caPem });
  try {
    return await connectWithLogin({
      mcpUrl: stack.mcpUrl(mcpPath),
      provider,
      fetch: stack.fetch,
      login: async (authorizationUrl) => {
        const consent = await browser.goto(authorizationUrl, { stopAt: provider.redirectUrl });
        assert.ok(consent.url.pathname.startsWith('/interaction/'), `expected the consent page, got ${consent.toString()}`);
        const authorize = await browser.submitForm(consent, { button: 'approve', stopAt: provider.redirectUrl });
        assert.equal(authorize.url.origin, github.origin, `expected GitHub's Authorize page, got ${authorize.toString()}`);
        let end = await github.approve(browser, authorize, login, { stopAt: provider.redirectUrl });
        if (!end.stopped && end.status === 403 && end.url.pathname === '/callback') {
          // Refused by an access rule: the denied page names the provider; its button returns access_denied.
          assert.match(end.text, /GitHub/, `the denied page names the provider: ${end.text}`);
          end = await browser.submitForm(end, { button: 'return', stopAt: provider.redirectUrl });
        }
        assert.ok(end.stopped, `expected the client's redirect URI, got ${end.toString()}`);
        return end.url;
      },
    });
  } finally {
    await browser.close();
  }
}

async function whoami(client: Awaited<ReturnType<typeof connectWithLogin>>): Promise<Record<string, unknown>> {
  const result = await client.callTool({ name: 'whoami', arguments: {} });
  const text = (result.content as { type: string; text?: string }[]).find((part) => part.type === 'text')?.text ?? '{}';
  return JSON.parse(text) as Record<string, unknown>;
}

describe('GitHub sign-in through the gateway', () => {
  let github: FakeGithub;
  let stack: Stack;

  before(async () => {
    github = await startFakeGithub({
      clientId: 'Ov23liE2eApp',
      clientSecret: 'e2e-github-secret-0123456789',
      callbackUrl: 'http://localhost/callback',
      users: GITHUB_USERS,
    });
    stack = await githubStack(github);
  });
  after(async () => {
    await stack?.close();
    await github?.close();
  });

  test('the SDK client logs in with GitHub: user id github:<numeric id>, verified email, orgs and teams stored', async () => {
    const provider = new TestOAuthClientProvider({ mode: 'dcr', clientName: 'GitHub e2e client' });
    const client = await githubLogin(stack, github, provider, 'octocat');
    const seen = JSON.stringify(await whoami(client));
    assert.match(seen, /github:583231/);
    assert.match(seen, /octocat@example\.com/);
    assert.doesNotMatch(seen, /gho_/, 'the GitHub token never reaches the MCP server');
    await client.close();

    const authorize = github.requests.find((request) => request.path === '/login/oauth/authorize' && request.method === 'GET');
    assert.equal(authorize?.query.get('code_challenge_method'), 'S256');
    assert.equal(authorize?.query.get('redirect_uri'), `${stack.issuer}/callback`);
    assert.equal(authorize?.query.get('scope'), 'read:user user:email read:org');
    assert.equal(authorize?.query.get('resource'), null, "the client's resource is never forwarded upstream");

    const user = await stack.gateway.storage.get<UserRecord>(NS.users, 'github:583231');
    assert.ok(user, 'the user record is keyed by the numeric id, not the login');
    assert.equal(user.provider, 'github');
    assert.equal(user.subject, '583231');
    assert.equal(user.email, 'octocat@example.com');
    assert.equal(user.emailVerified, true);
    assert.equal(user.name, 'The Octocat');
    assert.deepEqual(user.organizations, ['acme', 'octo-org']);
    assert.deepEqual(user.teams, ['acme/platform', 'octo-org/maintainers']);
  });

  test('an unverified GitHub email is not passed on', async () => {
    const provider = new TestOAuthClientProvider({ mode: 'dcr', clientName: 'GitHub e2e client 2' });
    const client = await githubLogin(stack, github, provider, 'newbie');
    const seen = JSON.stringify(await whoami(client));
    assert.match(seen, /github:9000001/);
    assert.doesNotMatch(seen, /newbie@example\.com/);
    await client.close();
    const user = await stack.gateway.storage.get<UserRecord>(NS.users, 'github:9000001');
    assert.equal(user?.email, undefined);
    assert.deepEqual(user?.organizations, ['octo-org']);
  });

  test('githubOrgs: a member of the org gets in, anyone else gets access_denied', async () => {
    const member = await githubLogin(stack, github, new TestOAuthClientProvider({ mode: 'dcr', clientName: 'member' }), 'octocat', '/acme');
    assert.match(JSON.stringify(await whoami(member)), /github:583231/);
    await member.close();

    const outsider = githubLogin(stack, github, new TestOAuthClientProvider({ mode: 'dcr', clientName: 'outsider' }), 'newbie', '/acme');
    const error = await outsider.then(
      () => assert.fail('the outsider must be refused'),
      (caught: unknown) => caught,
    );
    assert.ok(error instanceof AuthorizationRedirectError, `expected an error redirect, got ${String(error)}`);
    assert.equal(error.redirect.searchParams.get('error'), 'access_denied');
  });

  test('cancelling on GitHub sends access_denied back to the client', async () => {
    const provider = new TestOAuthClientProvider({ mode: 'dcr', clientName: 'canceller' });
    const browser = new Browser({ ca: stack.ca.caPem });
    try {
      const attempt = connectWithLogin({
        mcpUrl: stack.mcpUrl(),
        provider,
        fetch: stack.fetch,
        login: async (authorizationUrl) => {
          const consent = await browser.goto(authorizationUrl, { stopAt: provider.redirectUrl });
          const authorize = await browser.submitForm(consent, { button: 'approve', stopAt: provider.redirectUrl });
          return (await github.cancel(browser, authorize, { stopAt: provider.redirectUrl })).url;
        },
      });
      const error = await attempt.then(
        () => assert.fail('expected a refusal'),
        (caught: unknown) => caught,
      );
      assert.ok(error instanceof AuthorizationRedirectError, String(error));
      assert.equal(error.redirect.searchParams.get('error'), 'access_denied');
    } finally {
      await browser.close();
    }
  });
});

describe('GitHub expiring user tokens, refreshed through the IdP token source', () => {
  let github: FakeGithub;
  let stack: Stack;
  let outbound: OutboundFetch;

  before(async () => {
    // 30 s access tokens: below the token source's default 60 s minimum validity, so the first use refreshes.
    github = await startFakeGithub({
      clientId: 'Iv23liExpiring',
      clientSecret: 'expiring-secret-0123456789',
      callbackUrl: 'http://localhost/callback',
      users: GITHUB_USERS,
      expiringTokens: true,
      accessTokenTtl: 30,
    });
    stack = await githubStack(github);
    outbound = createOutboundFetch({ extraCaPem: (await createTestCa()).caPem, timeoutMs: 5_000 });
  });
  after(async () => {
    await stack?.close();
    await github?.close();
    await outbound?.close();
  });

  test('the stored GitHub token is refreshed once, rotated, and the new one works', async () => {
    const client = await githubLogin(stack, github, new TestOAuthClientProvider({ mode: 'dcr', clientName: 'refresher' }), 'octocat');
    await client.close();

    const userId = 'github:583231';
    const secretBox = new SecretBox([Buffer.from(ENCRYPTION_KEY, 'base64')]);
    const sealed = await stack.gateway.storage.get<string>(NS.idpTokens, userId);
    assert.ok(sealed, 'the GitHub tokens are stored for the user');
    const atLogin = secretBox.openJson<IdpTokens>(sealed, userId);
    assert.match(atLogin.accessToken ?? '', /^ghu_/);
    assert.match(atLogin.refreshToken ?? '', /^ghr_/);

    const config = githubProviderSchema.parse({
      type: 'github',
      clientId: github.clientId,
      clientSecret: github.clientSecret,
      baseUrl: github.origin,
      apiUrl: github.apiUrl,
    });
    const source = createIdpTokenSource({
      storage: stack.gateway.storage,
      secretBox,
      providers: [new GithubIdentityProvider(config, { fetch: outbound })],
      logger: createLogger('silent'),
    });
    const refreshesBefore = github.requests.filter((request) => new URLSearchParams(request.body).get('grant_type') === 'refresh_token').length;
    const [first, concurrent] = await Promise.all([source.accessTokenFor(userId), source.accessTokenFor(userId)]);
    assert.equal(first.accessToken, concurrent.accessToken, 'concurrent requests share one refresh');
    assert.notEqual(first.accessToken, atLogin.accessToken);
    assert.match(first.accessToken, /^ghu_/);
    const refreshes = github.requests.filter((request) => new URLSearchParams(request.body).get('grant_type') === 'refresh_token').length;
    assert.equal(refreshes - refreshesBefore, 1, 'one refresh for both requests');

    const stored = secretBox.openJson<IdpTokens>((await stack.gateway.storage.get<string>(NS.idpTokens, userId))!, userId);
    assert.equal(stored.accessToken, first.accessToken);
    assert.ok(stored.refreshToken && stored.refreshToken !== atLogin.refreshToken, 'the rotated refresh token is stored');

    const again = await source.accessTokenFor(userId, 10);
    assert.equal(again.accessToken, first.accessToken, 'a token still valid for the asked time is not refreshed');

    const user = await outbound(`${github.apiUrl}/user`, { headers: { authorization: `Bearer ${first.accessToken}`, 'user-agent': 'test' } });
    assert.equal(user.status, 200);
    assert.equal(((await user.json()) as { id: number }).id, 583231);
  });

  test('a server configured with idpToken receives a fresh GitHub token, refreshed by the gateway', async () => {
    const refreshCount = () => github.requests.filter((request) => new URLSearchParams(request.body).get('grant_type') === 'refresh_token').length;
    const before = refreshCount();
    const client = await githubLogin(stack, github, new TestOAuthClientProvider({ mode: 'dcr', clientName: 'handover' }), 'newbie', '/handover');
    const seen = await whoami(client);
    await client.close();
    const headers = JSON.stringify(seen);
    const token = /"x-user-github-token":"(ghu_[^"]+)"/.exec(headers)?.[1];
    assert.ok(token, `the MCP server got the user's GitHub token: ${headers}`);
    assert.ok(refreshCount() > before, 'the 30 s token was refreshed before it was handed over');
    const user = await outbound(`${github.apiUrl}/user`, { headers: { authorization: `Bearer ${token}`, 'user-agent': 'test' } });
    assert.equal(((await user.json()) as { id: number }).id, 9000001, "the token is the signed-in user's own");
  });
});
