/**
 * Several identity providers: consent first, then the sign-in chooser, then the chosen provider's login.
 * Two real providers: the upstream oidc-provider stand-in (`corp`) and the built-in `local` provider,
 * each with a user whose subject is `alice`, so namespacing by provider is what keeps them apart.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { hashPassword } from '../../src/idp/passwords.ts';
import { NS, type UserRecord } from '../../src/storage/records.ts';
import { Browser, type Page } from '../support/browser.ts';
import { connectWithLogin, TestOAuthClientProvider } from '../support/mcp-client.ts';
import { authorizeUrl, pkcePair, type Registered, registerPublicClient } from './oauth.ts';
import { type Stack, startStack } from './stack.ts';

const LOCAL_PASSWORD = 'local-alice-password';

describe('sign-in chooser with two identity providers', () => {
  let stack: Stack;

  before(async () => {
    const passwordHash = await hashPassword(LOCAL_PASSWORD);
    stack = await startStack({
      configure: (config) => {
        config.identityProviders = [
          ...(config.identityProviders ?? []),
          {
            type: 'local',
            id: 'local',
            displayName: 'Team accounts',
            users: [{ username: 'alice', passwordHash, email: 'alice@team.example', name: 'Local Alice' }],
          },
        ];
      },
    });
  });
  after(async () => {
    await stack?.close();
  });

  function authorizationUrlFor(client: Registered): URL {
    const { challenge } = pkcePair();
    return authorizeUrl(stack, {
      response_type: 'code',
      client_id: client.client_id,
      redirect_uri: client.redirect_uris[0],
      code_challenge: challenge,
      code_challenge_method: 'S256',
      state: randomBytes(8).toString('hex'),
      scope: 'mcp:tools',
      resource: stack.mcpUrl(),
    });
  }

  /** The consent page, approved: the chooser. */
  async function toChooser(browser: Browser, authorizationUrl: URL | string, redirectUri: string): Promise<Page> {
    const consent = await browser.goto(authorizationUrl, { stopAt: redirectUri });
    assert.match(consent.url.pathname, /^\/interaction\//, 'the consent page comes first');
    assert.equal(consent.forms.length, 1);
    const idpRequests = stack.idp.authorizationRequests.length;
    const chooser = await browser.submitForm(consent, { button: 'approve' });
    assert.equal(chooser.status, 200, String(chooser));
    assert.equal(stack.idp.authorizationRequests.length, idpRequests, 'nobody is sent to an IdP before choosing');
    return chooser;
  }

  /** Picks a provider on the chooser: each provider is its own form with one button. */
  function choose(browser: Browser, chooser: Page, providerId: string, extra: { fields?: Record<string, string>; allowExtraFields?: boolean } = {}) {
    const form = chooser.forms.find((candidate) => candidate.controls.some((control) => control.name === 'provider' && control.value === providerId));
    if (!form) throw new Error(`no option for ${providerId} on ${chooser}`);
    return browser.submitForm(chooser, { form: form.index, button: providerId, ...extra });
  }

  async function signInWith(browser: Browser, authorizationUrl: URL | string, redirectUri: string, providerId: 'corp' | 'local'): Promise<Page> {
    const chooser = await toChooser(browser, authorizationUrl, redirectUri);
    const login = await choose(browser, chooser, providerId);
    if (providerId === 'corp') return stack.idp.signIn(browser, login, 'alice', { stopAt: redirectUri });
    assert.match(login.url.pathname, /^\/sign-in\/local$/, String(login));
    return browser.submitForm(login, { fields: { username: 'alice', password: LOCAL_PASSWORD }, stopAt: redirectUri });
  }

  test('the chooser lists every provider by name, one CSRF-protected form each, and cannot be framed', async () => {
    const client = await registerPublicClient(stack);
    const browser = new Browser({ ca: stack.ca.caPem });
    const chooser = await toChooser(browser, authorizationUrlFor(client), client.redirect_uris[0]!);
    assert.ok(chooser.text.includes('Example Corp SSO'));
    assert.ok(chooser.text.includes('Team accounts'));
    const providerForms = chooser.forms.filter((form) => form.controls.some((control) => control.name === 'provider'));
    assert.equal(providerForms.length, 2);
    for (const form of providerForms) {
      assert.equal(form.method, 'post');
      assert.ok(form.controls.some((control) => control.name === 'csrf' && control.value.length >= 32));
    }
    assert.match(chooser.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
    assert.equal(chooser.headers.get('cache-control'), 'no-store');
  });

  test('each provider signs in through the chooser; the same subject at both is two different users', async () => {
    const seen: Record<string, string> = {};
    for (const providerId of ['corp', 'local'] as const) {
      const oauth = new TestOAuthClientProvider({ mode: 'dcr', clientName: `Chooser ${providerId}` });
      const browser = new Browser({ ca: stack.ca.caPem });
      const client = await connectWithLogin({
        mcpUrl: stack.mcpUrl(),
        provider: oauth,
        fetch: stack.fetch,
        login: async (authorizationUrl) => (await signInWith(browser, authorizationUrl, oauth.redirectUrl, providerId)).url,
      });
      const whoami = JSON.stringify((await client.callTool({ name: 'whoami', arguments: {} })).content);
      seen[providerId] = whoami;
      await client.close();
    }
    assert.match(seen.corp!, /corp:alice/);
    assert.match(seen.corp!, /alice@example\.com/);
    assert.match(seen.local!, /local:alice/);
    assert.match(seen.local!, /alice@team\.example/);
    assert.doesNotMatch(seen.local!, /corp:alice/);
    const corp = await stack.gateway.storage.get<UserRecord>(NS.users, 'corp:alice');
    const local = await stack.gateway.storage.get<UserRecord>(NS.users, 'local:alice');
    assert.equal(corp?.provider, 'corp');
    assert.equal(local?.provider, 'local');
    assert.equal(corp?.subject, local?.subject, 'same subject at both providers');
    assert.notEqual(corp?.email, local?.email, 'and still two records');
  });

  test('a provider id that is not configured is refused with an error page; nobody goes to an IdP', async () => {
    const client = await registerPublicClient(stack);
    const browser = new Browser({ ca: stack.ca.caPem });
    const chooser = await toChooser(browser, authorizationUrlFor(client), client.redirect_uris[0]!);
    const before = stack.idp.authorizationRequests.length;
    const form = chooser.forms.find((candidate) => candidate.controls.some((control) => control.name === 'provider'))!;
    const csrf = form.controls.find((control) => control.name === 'csrf')!.value;
    for (const providerId of ['github', 'CORP', 'corp ', '__proto__', '']) {
      // What a tampered form would send: the real step and token, a provider that is not configured.
      const refused = await browser.goto(chooser.resolve(form.action), {
        method: 'POST',
        contentType: 'application/x-www-form-urlencoded',
        body: new URLSearchParams({ step: 'sign-in', csrf, provider: providerId }).toString(),
        initiator: chooser.url,
      });
      assert.equal(refused.status, 400, `${JSON.stringify(providerId)}: ${refused}`);
      assert.match(refused.text, /not available/);
    }
    assert.equal(stack.idp.authorizationRequests.length, before);
    // The flow is still usable afterwards with a real choice.
    const login = await choose(browser, chooser, 'corp');
    const done = await stack.idp.signIn(browser, login, 'alice', { stopAt: client.redirect_uris[0]! });
    assert.ok(done.stopped && done.url.searchParams.get('code'), String(done));
  });

  test("a chooser post without the chooser's CSRF token is refused, even with the consent page's token", async () => {
    const client = await registerPublicClient(stack);
    const browser = new Browser({ ca: stack.ca.caPem });
    const consent = await browser.goto(authorizationUrlFor(client), { stopAt: client.redirect_uris[0]! });
    const consentCsrf = consent.forms[0]!.controls.find((control) => control.name === 'csrf')!.value;
    const decision = new URL(`${consent.url.pathname}/decision`, stack.issuer);
    const before = stack.idp.authorizationRequests.length;
    // Skipping consent: the consent token does not open the chooser step.
    const skipped = await browser.goto(decision, {
      method: 'POST',
      contentType: 'application/x-www-form-urlencoded',
      body: new URLSearchParams({ step: 'sign-in', provider: 'corp', csrf: consentCsrf }).toString(),
      initiator: consent.url,
    });
    assert.equal(skipped.status, 403);
    const chooser = await browser.submitForm(consent, { button: 'approve' });
    for (const csrf of ['', 'forged']) {
      const refused = await choose(browser, chooser, 'corp', { fields: { csrf } });
      assert.equal(refused.status, 403, String(refused));
    }
    const withoutToken = await browser.goto(decision, {
      method: 'POST',
      contentType: 'application/x-www-form-urlencoded',
      body: 'step=sign-in&provider=corp',
      initiator: chooser.url,
    });
    assert.equal(withoutToken.status, 403);
    assert.equal(stack.idp.authorizationRequests.length, before, 'nobody was sent to the IdP');
  });

  test('the chooser is bound to the browser: its form replayed from another browser is refused', async () => {
    const client = await registerPublicClient(stack);
    const victim = new Browser({ ca: stack.ca.caPem });
    const attacker = new Browser({ ca: stack.ca.caPem });
    const chooser = await toChooser(attacker, authorizationUrlFor(client), client.redirect_uris[0]!);
    const refused = await choose(victim, chooser, 'corp');
    assert.equal(refused.status, 400, 'no interaction cookie in this browser');
    assert.match(refused.text, /expired|another browser/);
  });

  test('after the chooser, the IdP callback is still checked against the browser that consented', async () => {
    const client = await registerPublicClient(stack);
    const victim = new Browser({ ca: stack.ca.caPem });
    const attacker = new Browser({ ca: stack.ca.caPem });
    const chooser = await toChooser(attacker, authorizationUrlFor(client), client.redirect_uris[0]!);
    const login = await choose(attacker, chooser, 'corp');
    const callback = await stack.idp.signIn(attacker, login, 'bob', { stopAt: `${stack.issuer}/callback` });
    assert.ok(callback.stopped, String(callback));
    const inVictim = await victim.goto(callback.url, { stopAt: client.redirect_uris[0]! });
    assert.equal(inVictim.status, 403, String(inVictim));
  });

  test('cancel on the chooser sends access_denied to the client', async () => {
    const client = await registerPublicClient(stack);
    const browser = new Browser({ ca: stack.ca.caPem });
    const chooser = await toChooser(browser, authorizationUrlFor(client), client.redirect_uris[0]!);
    const cancelled = await browser.submitForm(chooser, { form: chooser.forms.length - 1, button: 'deny', stopAt: client.redirect_uris[0]! });
    assert.ok(cancelled.stopped, String(cancelled));
    assert.equal(cancelled.url.searchParams.get('error'), 'access_denied');
    assert.equal(cancelled.url.searchParams.get('iss'), stack.issuer);
  });
});

describe('one identity provider: no chooser', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    await stack?.close();
  });

  test('approving the consent goes straight to the IdP', async () => {
    const client = await registerPublicClient(stack);
    const browser = new Browser({ ca: stack.ca.caPem });
    const { challenge } = pkcePair();
    const consent = await browser.goto(
      authorizeUrl(stack, {
        response_type: 'code',
        client_id: client.client_id,
        redirect_uri: client.redirect_uris[0],
        code_challenge: challenge,
        code_challenge_method: 'S256',
        scope: 'mcp:tools',
      }),
    );
    const next = await browser.submitForm(consent, { button: 'approve' });
    assert.equal(new URL(next.url).origin, stack.idp.issuer, String(next));
    assert.equal(next.hops[0]?.status, 303);
  });
});
