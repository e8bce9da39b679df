/**
 * The sign-in chooser (sign-in-chooser.ts): shown after consent when several identity providers are
 * configured; the posted provider id must name one of them exactly.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BINDING_COOKIE } from '../../../src/authorization/browser-binding.ts';
import { NS, type UserRecord } from '../../../src/storage/records.ts';
import { CLIENT_REDIRECT, type FixtureOptions, startInteractionFixture } from './interaction-fixture.ts';

const SEVERAL: FixtureOptions = {
  providers: [
    { id: 'staff', displayName: 'Staff accounts', users: [{ username: 'alice', email: 'alice@staff.example' }] },
    { id: 'partners', displayName: 'Partner accounts', users: [{ username: 'alice', email: 'alice@partner.example' }] },
    { id: 'robots', displayName: 'Service accounts', users: [] },
  ],
};

test('with several providers, approving consent shows one button per provider and binds nothing yet', async (t) => {
  const fixture = await startInteractionFixture(t, SEVERAL);
  const browser = fixture.browser();
  const chooser = await fixture.signInPage(browser, await fixture.authorizationUrl());
  assert.equal(chooser.status, 200);
  const offered = chooser.forms.flatMap((form) => form.controls.filter((control) => control.name === 'provider').map((control) => control.value));
  assert.deepEqual(offered, ['staff', 'partners', 'robots']);
  assert.equal(browser.jar.get(BINDING_COOKIE), undefined, 'the binding comes with the IdP redirect, not before');
});

test("the chosen provider signs the person in, as that provider's user", async (t) => {
  const fixture = await startInteractionFixture(t, SEVERAL);
  const browser = fixture.browser();
  const chooser = await fixture.signInPage(browser, await fixture.authorizationUrl());
  const signIn = await browser.submitForm(chooser, { form: 1, button: 'partners' });
  assert.equal(signIn.url.pathname, '/sign-in/partners');
  const done = await browser.goto(await fixture.callbackUrl(browser, signIn), { stopAt: CLIENT_REDIRECT });
  assert.ok(done.url.searchParams.get('code'), String(done));
  assert.equal((await fixture.storage.get<UserRecord>(NS.users, 'partners:alice'))?.email, 'alice@partner.example');
  assert.equal(await fixture.storage.get(NS.users, 'staff:alice'), undefined);
});

test('a provider id that is not configured is refused', async (t) => {
  const fixture = await startInteractionFixture(t, SEVERAL);
  const browser = fixture.browser();
  const chooser = await fixture.signInPage(browser, await fixture.authorizationUrl());
  const form = chooser.form(0);
  const csrf = form.controls.find((control) => control.name === 'csrf')!.value;
  for (const forged of ['evil', 'Staff', 'staff ', '__proto__', '']) {
    const body = new URLSearchParams({ step: 'sign-in', csrf, provider: forged }).toString();
    const page = await browser.goto(chooser.resolve(form.action), {
      method: 'POST',
      body,
      contentType: 'application/x-www-form-urlencoded',
      initiator: chooser.url,
    });
    assert.equal(page.status, 400, forged);
  }
  assert.equal(browser.jar.get(BINDING_COOKIE), undefined);
});

test('cancel on the chooser answers access_denied to the client', async (t) => {
  const fixture = await startInteractionFixture(t, SEVERAL);
  const browser = fixture.browser();
  const chooser = await fixture.signInPage(browser, await fixture.authorizationUrl());
  const cancelled = await browser.submitForm(chooser, { form: chooser.forms.length - 1, button: 'deny', stopAt: CLIENT_REDIRECT });
  assert.ok(cancelled.stopped, String(cancelled));
  assert.equal(cancelled.url.searchParams.get('error'), 'access_denied');
});

test("the chooser step cannot be reached by skipping consent (the consent token is not the chooser's)", async (t) => {
  const fixture = await startInteractionFixture(t, SEVERAL);
  const browser = fixture.browser();
  const consent = await browser.goto(await fixture.authorizationUrl());
  const page = await browser.submitForm(consent, { button: 'approve', fields: { step: 'sign-in', provider: 'staff' }, allowExtraFields: true });
  assert.equal(page.status, 403);
});
