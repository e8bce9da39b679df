/**
 * Google's refresh-token rule, reproduced by the stand-in (test/support/idp-standins.ts) and met by
 * the `google` preset: a refresh token only for `access_type=offline` with a consent prompt. An
 * operator who replaces the prompt without `consent` gets no refresh token, which this pins so the
 * documentation's advice (`select_account consent`) stays true.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as client from 'openid-client';
import type { OidcFamilyConfig } from '../../../src/config/schema/providers-oidc.ts';
import { configSchema } from '../../../src/config/schema.ts';
import { createOutboundFetch, type OutboundFetch } from '../../../src/http/outbound.ts';
import { createOidcProvider } from '../../../src/idp/presets/index.ts';
import { Browser } from '../../support/browser.ts';
import { STANDIN_CLIENT_ID, STANDIN_CLIENT_SECRET, startGoogleStandin } from '../../support/idp-standins.ts';
import type { OidcIdp } from '../../support/oidc-idp.ts';
import { freePort } from '../../support/ports.ts';
import { createTestCa, type TestCa } from '../../support/tls.ts';

let ca: TestCa;
let google: OidcIdp;
let outbound: OutboundFetch;
let callbackUrl: string;

before(async () => {
  ca = await createTestCa();
  outbound = createOutboundFetch({ extraCaPem: ca.caPem, timeoutMs: 5_000 });
  callbackUrl = `https://localhost:${await freePort()}/callback`;
  google = await startGoogleStandin({ redirectUris: [callbackUrl], users: { alice: { sub: '1234', email: 'alice@example.com', email_verified: true } } });
});

after(async () => {
  await google.close();
  await outbound.close();
});

async function loginWith(authorizationParams: Record<string, string>) {
  const config = configSchema.parse({
    identityProviders: [{ type: 'google', issuer: google.issuer, clientId: STANDIN_CLIENT_ID, clientSecret: STANDIN_CLIENT_SECRET, authorizationParams }],
  }).identityProviders![0] as OidcFamilyConfig;
  const provider = createOidcProvider(config, { fetch: outbound });
  const state = { state: client.randomState(), codeVerifier: client.randomPKCECodeVerifier(), nonce: client.randomNonce() };
  const browser = new Browser({ ca: ca.caPem });
  try {
    const page = await google.signIn(browser, await browser.goto(await provider.authorizationUrl(state, callbackUrl)), 'alice', { stopAt: callbackUrl });
    return await provider.completeLogin(page.url, state, callbackUrl);
  } finally {
    await browser.close();
  }
}

test('the preset gets a refresh token (access_type=offline, prompt=consent), and refreshing works', async () => {
  const result = await loginWith({});
  assert.equal(result.identity.subject, '1234');
  assert.ok(result.tokens.refreshToken, 'refresh token');
  const provider = createOidcProvider(
    configSchema.parse({
      identityProviders: [{ type: 'google', issuer: google.issuer, clientId: STANDIN_CLIENT_ID, clientSecret: STANDIN_CLIENT_SECRET }],
    }).identityProviders![0] as OidcFamilyConfig,
    { fetch: outbound },
  );
  const refreshed = await provider.refresh(result.tokens);
  assert.ok(refreshed.accessToken && refreshed.accessToken !== result.tokens.accessToken);
});

test('a prompt without consent: no refresh token (Google\'s rule); with "select_account consent": one', async () => {
  assert.equal((await loginWith({ prompt: 'select_account' })).tokens.refreshToken, undefined);
  assert.ok((await loginWith({ prompt: 'select_account consent' })).tokens.refreshToken);
});
