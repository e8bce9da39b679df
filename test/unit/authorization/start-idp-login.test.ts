/**
 * The start of the IdP login (start-idp-login.ts): what the pending login holds, and what happens when
 * the IdP redirect cannot be built.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BINDING_COOKIE, bindingDigest } from '../../../src/authorization/browser-binding.ts';
import { PENDING_LOGIN_TTL_SECONDS, takePendingLogin } from '../../../src/authorization/interactions/pending-login.ts';
import { NS } from '../../../src/storage/records.ts';
import { CLIENT_REDIRECT, startInteractionFixture } from './interaction-fixture.ts';

test('the pending login carries fresh PKCE, state and nonce, the flow it belongs to, and this browser', async (t) => {
  const fixture = await startInteractionFixture(t);
  const browser = fixture.browser();
  const before = Math.floor(Date.now() / 1000);
  const signIn = await fixture.signInPage(browser, await fixture.authorizationUrl());
  const state = signIn.url.searchParams.get('state')!;
  const pending = await takePendingLogin(fixture.ctx, state);
  assert.ok(pending);
  assert.equal(pending.state, state);
  assert.ok(pending.codeVerifier.length >= 43 && pending.nonce.length >= 43, 'RFC 7636 §4.1 verifier length, an unguessable nonce');
  assert.equal(pending.providerId, 'local');
  assert.equal(pending.redirectUri, CLIENT_REDIRECT);
  assert.equal(pending.resource, fixture.resources[0]!.resource);
  assert.deepEqual(pending.resourceScopes, ['mcp:tools']);
  assert.ok(pending.expiresAt >= before + PENDING_LOGIN_TTL_SECONDS && pending.expiresAt <= before + PENDING_LOGIN_TTL_SECONDS + 5);
  const [value] = browser.jar.get(BINDING_COOKIE)!.value.split('.');
  assert.equal(pending.browser, bindingDigest(value!), 'a digest of the cookie, not the cookie');
});

test('two sign-ins in one browser reuse its binding, so parallel tabs both complete', async (t) => {
  const fixture = await startInteractionFixture(t);
  const browser = fixture.browser();
  const first = await fixture.signInPage(browser, await fixture.authorizationUrl());
  const second = await fixture.signInPage(browser, await fixture.authorizationUrl());
  for (const signIn of [first, second]) {
    const done = await browser.goto(await fixture.callbackUrl(browser, signIn), { stopAt: CLIENT_REDIRECT });
    assert.ok(done.url.searchParams.get('code'), String(done));
  }
});

test('an IdP redirect that cannot be built answers temporarily_unavailable and leaves no pending login', async (t) => {
  const fixture = await startInteractionFixture(t);
  // The local provider refuses to build a redirect for a callback it was not set up with.
  fixture.ctx.callbackUrl = `${fixture.issuer}/elsewhere`;
  const browser = fixture.browser();
  const consent = await browser.goto(await fixture.authorizationUrl());
  const answered = await browser.submitForm(consent, { button: 'approve', stopAt: CLIENT_REDIRECT });
  assert.ok(answered.stopped, String(answered));
  assert.equal(answered.url.searchParams.get('error'), 'temporarily_unavailable');
  const [state] = fixture.storage.pendingLoginStates;
  assert.ok(state, 'a pending login was written before the redirect was attempted');
  assert.equal(await fixture.storage.get(NS.pendingLogins, state), undefined, 'and removed again');
  assert.equal(browser.jar.get(BINDING_COOKIE), undefined, 'no binding without a login to bind');
});
