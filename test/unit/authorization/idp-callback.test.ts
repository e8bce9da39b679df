/**
 * The IdP callback (idp-callback.ts) through the action itself: single-use and expiring state, the
 * browser-binding cookie (RFC 9700 §4.7), the access rules, and what a login records.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BINDING_COOKIE } from '../../../src/authorization/browser-binding.ts';
import { PENDING_LOGIN_TTL_SECONDS } from '../../../src/authorization/interactions/pending-login.ts';
import type { AccessRules } from '../../../src/config/schema/access.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { NS, type UserRecord } from '../../../src/storage/records.ts';
import type { Browser } from '../../support/browser.ts';
import { TestClock } from '../../support/clock.ts';
import { CLIENT_REDIRECT, type InteractionFixture, startInteractionFixture } from './interaction-fixture.ts';

function rules(overrides: Partial<AccessRules> = {}): AccessRules {
  return { emails: [], emailDomains: [], groups: [], githubOrgs: [], githubTeams: [], tenants: [], subjects: [], ...overrides };
}

/** Consent approved and the IdP sign-in done in `browser`; returns the IdP's callback URL, not yet followed. */
async function callbackFor(fixture: InteractionFixture, browser: Browser, username = 'alice'): Promise<URL> {
  const signIn = await fixture.signInPage(browser, await fixture.authorizationUrl());
  return fixture.callbackUrl(browser, signIn, username);
}

async function users(fixture: InteractionFixture): Promise<UserRecord | undefined> {
  return fixture.storage.get<UserRecord>(NS.users, 'local:alice');
}

test('the callback in the consenting browser records the user and finishes with a code for the client', async (t) => {
  const fixture = await startInteractionFixture(t);
  const browser = fixture.browser();
  const callback = await callbackFor(fixture, browser);
  const done = await browser.goto(callback, { stopAt: CLIENT_REDIRECT });
  assert.ok(done.stopped, String(done));
  assert.ok(done.url.searchParams.get('code'));
  assert.equal(done.url.searchParams.get('state'), 'client-state');
  const user = await users(fixture);
  assert.equal(user?.email, 'alice@example.com');
  assert.equal(user?.provider, 'local');
});

test('what the person approved goes to the audit log and the grant; no consent record nobody reads is kept', async (t) => {
  const fixture = await startInteractionFixture(t);
  const lines: Array<Record<string, unknown>> = [];
  fixture.ctx.logger = createLogger('info', { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const browser = fixture.browser();
  const done = await browser.goto(await callbackFor(fixture, browser), { stopAt: CLIENT_REDIRECT });
  assert.ok(done.url.searchParams.get('code'));
  // 'consent': the namespace earlier versions wrote a record per login to, never read back.
  assert.deepEqual(await fixture.storage.list('consent'), []);
  const login = lines.find((line) => line.event === 'login.succeeded');
  assert.ok(login, 'the login is audited');
  assert.equal(login.user, 'local:alice');
  assert.equal(login.redirectUri, CLIENT_REDIRECT);
  assert.equal(login.server, fixture.resources[0]!.resource);
  assert.deepEqual(login.scopes, ['mcp:tools']);
  assert.ok(login.clientId && login.grantId);
});

test('a callback in a browser without the binding cookie is refused (login CSRF)', async (t) => {
  const fixture = await startInteractionFixture(t);
  const callback = await callbackFor(fixture, fixture.browser());
  const victim = fixture.browser();
  const page = await victim.goto(callback, { stopAt: CLIENT_REDIRECT });
  assert.equal(page.status, 403);
  assert.equal(await users(fixture), undefined, 'no user recorded');
});

test("a forged binding cookie, or another browser's genuine one, is refused", async (t) => {
  const fixture = await startInteractionFixture(t);
  const callback = await callbackFor(fixture, fixture.browser());
  const forger = fixture.browser();
  forger.jar.set(fixture.issuer, `${BINDING_COOKIE}=${'v'.repeat(32)}.${'s'.repeat(43)}; Path=/; Secure; HttpOnly; SameSite=Lax`);
  assert.ok(forger.jar.get(BINDING_COOKIE), 'the forged cookie is sent');
  assert.equal((await forger.goto(callback)).status, 403);

  // The attacker's own binding is authentic, but it is not the one this login was approved with.
  const fixture2 = await startInteractionFixture(t);
  const victimCallback = await callbackFor(fixture2, fixture2.browser());
  const attacker = fixture2.browser();
  await fixture2.signInPage(attacker, await fixture2.authorizationUrl());
  assert.ok(attacker.jar.get(BINDING_COOKIE), 'the attacker holds a genuine binding cookie');
  assert.equal((await attacker.goto(victimCallback)).status, 403);
  assert.equal(await users(fixture2), undefined);
});

test('a state is single-use: the second callback with it is refused', async (t) => {
  const fixture = await startInteractionFixture(t);
  const browser = fixture.browser();
  const callback = await callbackFor(fixture, browser);
  const first = await browser.goto(callback, { stopAt: CLIENT_REDIRECT });
  assert.ok(first.stopped);
  const replay = await browser.goto(callback, { stopAt: CLIENT_REDIRECT });
  assert.equal(replay.status, 400);
  assert.ok(!replay.stopped, 'no second code');
});

test('a refused callback still burns the state, so the rightful browser cannot be raced into a retry', async (t) => {
  const fixture = await startInteractionFixture(t);
  const owner = fixture.browser();
  const callback = await callbackFor(fixture, owner);
  assert.equal((await fixture.browser().goto(callback)).status, 403);
  assert.equal((await owner.goto(callback, { stopAt: CLIENT_REDIRECT })).status, 400);
});

test('an expired state is refused, by the context clock, with nothing recorded', async (t) => {
  const fixture = await startInteractionFixture(t);
  const browser = fixture.browser();
  const callback = await callbackFor(fixture, browser);
  const start = Date.now();
  fixture.ctx.clock = new TestClock(start + (PENDING_LOGIN_TTL_SECONDS + 1) * 1000);
  const page = await browser.goto(callback, { stopAt: CLIENT_REDIRECT });
  assert.equal(page.status, 400);
  assert.ok(!page.stopped);
  assert.equal(await users(fixture), undefined);
});

test('a state just inside its lifetime is still accepted', async (t) => {
  const fixture = await startInteractionFixture(t);
  const browser = fixture.browser();
  const callback = await callbackFor(fixture, browser);
  const start = Date.now();
  fixture.ctx.clock = new TestClock(start + (PENDING_LOGIN_TTL_SECONDS - 30) * 1000);
  assert.ok((await browser.goto(callback, { stopAt: CLIENT_REDIRECT })).stopped);
});

test('a callback without a state, or with an unknown one, is refused', async (t) => {
  const fixture = await startInteractionFixture(t);
  const browser = fixture.browser();
  assert.equal((await browser.goto(new URL('/callback?code=x', fixture.issuer))).status, 400);
  assert.equal((await browser.goto(new URL('/callback?code=x&state=never-issued', fixture.issuer))).status, 400);
});

test('access rules that refuse the account show the denied page, record nothing, then answer access_denied', async (t) => {
  const fixture = await startInteractionFixture(t, {
    providers: [
      {
        id: 'local',
        displayName: 'Team accounts',
        users: [
          { username: 'alice', email: 'alice@example.com' },
          { username: 'bob', email: 'bob@other.example' },
        ],
      },
    ],
    servers: [
      {
        name: 'tools',
        path: '/mcp',
        scopes: ['mcp:tools'],
        access: { gateway: rules(), server: rules({ emailDomains: ['example.com'], contact: 'the platform team' }) },
      },
    ],
  });
  const browser = fixture.browser();
  const authorization = await fixture.authorizationUrl();
  const callback = await fixture.callbackUrl(browser, await fixture.signInPage(browser, authorization), 'bob');
  const denied = await browser.goto(callback, { stopAt: CLIENT_REDIRECT });
  assert.equal(denied.status, 403);
  assert.ok(!denied.stopped, 'the client hears nothing until the person leaves the page');
  assert.equal(await fixture.storage.get(NS.users, 'local:bob'), undefined, 'no user');

  const back = await browser.submitForm(denied, { stopAt: CLIENT_REDIRECT });
  assert.ok(back.stopped, String(back));
  assert.equal(back.url.searchParams.get('error'), 'access_denied');
  assert.equal(back.url.searchParams.get('state'), 'client-state');
});

test('the same rules admit a matching account', async (t) => {
  const fixture = await startInteractionFixture(t, {
    servers: [{ name: 'tools', path: '/mcp', scopes: ['mcp:tools'], access: { gateway: rules(), server: rules({ emailDomains: ['example.com'] }) } }],
  });
  const browser = fixture.browser();
  const done = await browser.goto(await callbackFor(fixture, browser), { stopAt: CLIENT_REDIRECT });
  assert.ok(done.url.searchParams.get('code'));
});

test('the denied step cannot be posted without a refusal (its token does not exist before one)', async (t) => {
  const fixture = await startInteractionFixture(t);
  const browser = fixture.browser();
  const consent = await browser.goto(await fixture.authorizationUrl());
  const page = await browser.submitForm(consent, { button: 'approve', fields: { step: 'denied' }, allowExtraFields: true });
  assert.equal(page.status, 403, "the consent token is not the denied page's");
});

test('a login the IdP does not complete reaches the client as its OAuth error, with nothing recorded', async (t) => {
  const fixture = await startInteractionFixture(t);
  const browser = fixture.browser();
  const callback = await callbackFor(fixture, browser);
  callback.searchParams.set('code', 'not-the-code-the-idp-issued');
  const answered = await browser.goto(callback, { stopAt: CLIENT_REDIRECT });
  assert.ok(answered.stopped, String(answered));
  assert.equal(answered.url.searchParams.get('error'), 'access_denied');
  assert.equal(answered.url.searchParams.get('state'), 'client-state');
  assert.equal(await users(fixture), undefined);
});
