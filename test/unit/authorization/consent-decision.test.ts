/**
 * The consent page and its decision (show-consent.ts, decision.ts) through the actions themselves:
 * a real oidc-provider interaction, the real local identity provider, memory storage.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BINDING_COOKIE } from '../../../src/authorization/browser-binding.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { NS } from '../../../src/storage/records.ts';
import type { Page } from '../../support/browser.ts';
import { CLIENT_REDIRECT, type InteractionFixture, startInteractionFixture } from './interaction-fixture.ts';

async function pendingLoginCount(fixture: InteractionFixture, state: string | null): Promise<number> {
  return state !== null && (await fixture.storage.get(NS.pendingLogins, state)) !== undefined ? 1 : 0;
}

function decisionUrl(consent: Page): URL {
  return consent.resolve(consent.form(0).action);
}

test('the consent page names the client and the MCP server, with a form for this interaction', async (t) => {
  const fixture = await startInteractionFixture(t);
  const browser = fixture.browser();
  const consent = await browser.goto(await fixture.authorizationUrl());
  assert.equal(consent.status, 200);
  assert.match(consent.url.pathname, /^\/interaction\/[^/]+$/);
  assert.equal(decisionUrl(consent).pathname, `${consent.url.pathname}/decision`);
  assert.ok(consent.form(0).controls.some((control) => control.name === 'csrf' && control.value.length > 20));
});

test('the consent page of another interaction uid is refused in this browser', async (t) => {
  const fixture = await startInteractionFixture(t);
  const browser = fixture.browser();
  const consent = await browser.goto(await fixture.authorizationUrl());
  const other = await browser.goto(new URL('/interaction/someone-elses-uid', fixture.issuer));
  assert.equal(other.status, 400);
  assert.equal(consent.status, 200);
});

test('a decision without a CSRF token, or with a wrong one, is refused before anything happens', async (t) => {
  const fixture = await startInteractionFixture(t);
  const browser = fixture.browser();
  const consent = await browser.goto(await fixture.authorizationUrl());

  const missing = await browser.goto(decisionUrl(consent), {
    method: 'POST',
    body: 'decision=approve',
    contentType: 'application/x-www-form-urlencoded',
    initiator: consent.url,
  });
  assert.equal(missing.status, 403);
  const wrong = await browser.submitForm(consent, { button: 'approve', fields: { csrf: 'A'.repeat(43) } });
  assert.equal(wrong.status, 403);
  const deniedWithoutToken = await browser.submitForm(consent, { button: 'deny', fields: { csrf: '' } });
  assert.equal(deniedWithoutToken.status, 403, "a deny needs the token too, or anyone could end a stranger's sign-in");

  for (const page of [missing, wrong, deniedWithoutToken]) {
    assert.ok(
      page.hops.every((hop) => hop.location === undefined),
      'no redirect, neither to the IdP nor to the client',
    );
  }
  assert.equal(browser.jar.get(BINDING_COOKIE), undefined, 'no browser binding was issued');
});

test('a token minted for another step does not pass for consent', async (t) => {
  const fixture = await startInteractionFixture(t);
  const browser = fixture.browser();
  const consent = await browser.goto(await fixture.authorizationUrl());
  const uid = consent.url.pathname.split('/').pop()!;
  const { stepCsrfToken, CHOOSER_STEP } = await import('../../../src/authorization/interactions/steps.ts');
  const chooserToken = stepCsrfToken(fixture.ctx.consentSecret, CHOOSER_STEP, uid);
  const refused = await browser.submitForm(consent, { button: 'approve', fields: { csrf: chooserToken } });
  assert.equal(refused.status, 403);
});

test('deny sends access_denied to the registered redirect URI, with the client state and iss', async (t) => {
  const fixture = await startInteractionFixture(t);
  const browser = fixture.browser();
  const consent = await browser.goto(await fixture.authorizationUrl());
  const denied = await browser.submitForm(consent, { button: 'deny', stopAt: CLIENT_REDIRECT });
  assert.ok(denied.stopped, String(denied));
  assert.equal(`${denied.url.origin}${denied.url.pathname}`, CLIENT_REDIRECT);
  assert.equal(denied.url.searchParams.get('error'), 'access_denied');
  assert.equal(denied.url.searchParams.get('state'), 'client-state');
  assert.equal(denied.url.searchParams.get('iss'), fixture.issuer, 'RFC 9207');
});

test('deny from a browser without the interaction gets an error page, never a redirect', async (t) => {
  const fixture = await startInteractionFixture(t);
  const consent = await fixture.browser().goto(await fixture.authorizationUrl());
  const csrf = consent.form(0).controls.find((control) => control.name === 'csrf')!.value;
  // Another browser posts the very form (token included), but has no interaction cookie: nothing
  // tells which client and redirect URI it is about, so nothing may be redirected.
  const stranger = fixture.browser();
  const page = await stranger.goto(decisionUrl(consent), {
    method: 'POST',
    body: `csrf=${csrf}&decision=deny`,
    contentType: 'application/x-www-form-urlencoded',
  });
  assert.equal(page.status, 400);
  assert.ok(page.hops.every((hop) => hop.location === undefined));
});

test('an unknown client redirect URI never reaches consent, so nothing can be redirected there', async (t) => {
  const fixture = await startInteractionFixture(t);
  const url = await fixture.authorizationUrl();
  url.searchParams.set('redirect_uri', 'https://attacker.example/cb');
  const page = await fixture.browser().goto(url, { stopAt: (target) => target.hostname === 'attacker.example' });
  assert.ok(!page.stopped, 'no redirect to the unregistered URI');
  assert.equal(page.status, 400);
});

test('approve with one identity provider binds the browser, stores the pending login, and goes to the IdP', async (t) => {
  const fixture = await startInteractionFixture(t);
  const browser = fixture.browser();
  const signIn = await fixture.signInPage(browser, await fixture.authorizationUrl());
  assert.equal(signIn.status, 200);
  assert.equal(signIn.url.pathname, '/sign-in/local');
  const approveHop = signIn.hops.find((hop) => hop.method === 'POST');
  assert.equal(approveHop?.status, 303);
  assert.ok(approveHop?.setCookies.some((cookie) => cookie.startsWith(`${BINDING_COOKIE}=`) && /HttpOnly/.test(cookie) && /Secure/.test(cookie)));
  assert.ok(browser.jar.get(BINDING_COOKIE), 'the browser kept the __Host- cookie');
  assert.equal(await pendingLoginCount(fixture, signIn.url.searchParams.get('state')), 1);
});

test('a decision that is neither approve nor deny is not taken as approval', async (t) => {
  const fixture = await startInteractionFixture(t);
  const browser = fixture.browser();
  const consent = await browser.goto(await fixture.authorizationUrl());
  const csrf = consent.form(0).controls.find((control) => control.name === 'csrf')!.value;
  const page = await browser.goto(decisionUrl(consent), {
    method: 'POST',
    body: `csrf=${csrf}&decision=maybe`,
    contentType: 'application/x-www-form-urlencoded',
    initiator: consent.url,
  });
  assert.equal(page.status, 400);
  assert.equal(browser.jar.get(BINDING_COOKIE), undefined);
});

test('optional scopes are ticked boxes with their descriptions; an unticked one is declined and rejected on the grant', async (t) => {
  const fixture = await startInteractionFixture(t, {
    servers: [
      {
        name: 'files',
        path: '/mcp',
        scopes: ['files', 'files:write'],
        requiredScopes: ['files'],
        scopeDescriptions: { files: 'Read your files', 'files:write': 'Change your files' },
      },
    ],
  });
  const lines: Array<Record<string, unknown>> = [];
  fixture.ctx.logger = createLogger('info', { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const browser = fixture.browser();
  const consent = await browser.goto(await fixture.authorizationUrl());
  const boxes = consent.form(0).controls.filter((control) => control.name.startsWith('scope:'));
  assert.deepEqual(
    boxes.map((control) => control.name),
    ['scope:files:write'],
    'only the optional scope can be unticked',
  );
  assert.match(consent.text, /Read your files/);
  assert.match(consent.text, /Change your files/);

  // Unticked: the form is sent without the box.
  const signIn = await browser.submitForm(consent, { button: 'approve', fields: { 'scope:files:write': false } });
  const callback = await fixture.callbackUrl(browser, signIn);
  const done = await browser.goto(callback, { stopAt: CLIENT_REDIRECT });
  assert.ok(done.url.searchParams.get('code'), done.url.href);
  const approved = lines.find((line) => line.event === 'consent.approved');
  assert.deepEqual(approved?.scopes, ['files']);
  assert.deepEqual(approved?.declined, ['files:write']);
  const login = lines.find((line) => line.event === 'login.succeeded');
  const grant = await fixture.provider.Grant.find(String(login?.grantId));
  assert.equal(grant?.getResourceScope(`${fixture.issuer}/mcp`), 'files');
  assert.equal(grant?.getRejectedResourceScope(`${fixture.issuer}/mcp`), 'files:write');
});
