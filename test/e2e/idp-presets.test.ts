/**
 * Every OIDC preset end to end: the official SDK client logs in through the gateway, whose one
 * identity provider is a stand-in shaped like that IdP (test/support/idp-standins.ts); the MCP server
 * sees the mapped identity; the IdP tokens the gateway kept are refreshed through the IdP-token source.
 * Checks what the gateway sent upstream for each IdP's quirk (Google's offline access, Auth0's
 * audience, Entra's scopes without `resource`, Cognito without `offline_access`).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, test } from 'node:test';
import type { OidcFamilyConfig } from '../../src/config/schema/providers-oidc.ts';
import type { GatewayConfigInput } from '../../src/config/schema.ts';
import { configSchema } from '../../src/config/schema.ts';
import { createOutboundFetch } from '../../src/http/outbound.ts';
import { createIdpTokenSource, IdpReauthenticationRequired } from '../../src/idp/idp-tokens.ts';
import { createOidcProvider } from '../../src/idp/presets/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { NS, type UserRecord } from '../../src/storage/records.ts';
import { loadEncryptionKeys, SecretBox } from '../../src/storage/secret-box.ts';
import { Browser } from '../support/browser.ts';
import {
  STANDIN_CLIENT_ID,
  STANDIN_CLIENT_SECRET,
  startAuth0Standin,
  startAuthentikStandin,
  startCognitoStandin,
  startEntraStandin,
  startGoogleStandin,
  startKeycloakStandin,
  startOktaStandin,
} from '../support/idp-standins.ts';
import { connectWithLogin, TestOAuthClientProvider } from '../support/mcp-client.ts';
import type { OidcIdp, TestUser } from '../support/oidc-idp.ts';
import { revokeAtIdp } from '../support/oidc-idp.ts';
import type { Stack } from './stack.ts';
import { startStack, storedIdpTokens } from './stack.ts';

type ProviderInput = NonNullable<GatewayConfigInput['identityProviders']>[number];

const TENANT_A = '11111111-2222-4333-8444-555555555555';
const OID_ALICE = 'aaaaaaaa-0000-4000-8000-00000000a11c';
const client = { clientId: STANDIN_CLIENT_ID, clientSecret: STANDIN_CLIENT_SECRET };

interface PresetCase {
  name: string;
  /** Starts the stand-in for the gateway's callback URL; returns it and the gateway's provider entry. */
  start(callbackUrl: string): Promise<{ idp: OidcIdp; provider: ProviderInput; close?: () => Promise<void>; audiences?: (string | undefined)[] }>;
  userId: string;
  email: string;
  /** What the user record says of the email's verification. */
  emailVerified: boolean | undefined;
  groups: string[];
  /** What the gateway must (not) have sent on the authorization request. */
  checkRequest(query: URLSearchParams, extra: { audiences?: (string | undefined)[] }): void;
}

const CASES: PresetCase[] = [
  {
    name: 'entra (multi-tenant common, tid allowed, oid as subject, groups + app roles)',
    async start(callbackUrl) {
      const entra = await startEntraStandin({
        tenantId: TENANT_A,
        redirectUris: [callbackUrl],
        users: { alice: { oid: OID_ALICE, email: 'alice@contoso.example', name: 'Alice Contoso', groups: ['g-eng'], roles: ['Mcp.User'] } },
      });
      return {
        idp: entra.idp,
        provider: {
          type: 'entra',
          id: 'entra',
          tenant: 'common',
          allowedTenants: [TENANT_A],
          authority: entra.authority,
          scopes: ['openid', 'profile', 'email', 'offline_access', 'api://mcp-gateway/access'],
          ...client,
        },
      };
    },
    userId: `entra:${OID_ALICE}`,
    email: 'alice@contoso.example',
    emailVerified: undefined,
    groups: ['g-eng', 'Mcp.User'],
    checkRequest(query) {
      assert.equal(query.has('resource'), false, 'never resource together with scope');
      assert.deepEqual(query.get('scope')?.split(' '), ['openid', 'profile', 'email', 'offline_access', 'api://mcp-gateway/access']);
      assert.equal(query.get('code_challenge_method'), 'S256', "S256 although Entra's discovery does not list it");
    },
  },
  {
    name: 'google (offline access with consent, hd checked)',
    async start(callbackUrl) {
      const idp = await startGoogleStandin({
        redirectUris: [callbackUrl],
        users: { alice: { sub: '104892763534021', email: 'alice@example.com', email_verified: true, name: 'Alice G', hd: 'example.com' } },
      });
      return { idp, provider: { type: 'google', hostedDomain: 'example.com', issuer: idp.issuer, ...client } };
    },
    userId: 'google:104892763534021',
    email: 'alice@example.com',
    emailVerified: true,
    groups: [],
    checkRequest(query) {
      assert.equal(query.get('access_type'), 'offline');
      assert.equal(query.get('prompt'), 'consent');
      assert.equal(query.get('hd'), 'example.com');
      assert.equal(query.get('scope'), 'openid email profile', 'no offline_access scope at Google');
    },
  },
  {
    name: 'okta (custom authorization server)',
    async start(callbackUrl) {
      const idp = await startOktaStandin({
        redirectUris: [callbackUrl],
        users: { alice: { sub: '00u1abcd', email: 'alice@example.com', email_verified: true, name: 'Alice O', groups: ['Everyone', 'mcp'] } },
      });
      return { idp, provider: { type: 'okta', issuer: idp.issuer, ...client } };
    },
    userId: 'okta:00u1abcd',
    email: 'alice@example.com',
    emailVerified: true,
    groups: ['Everyone', 'mcp'],
    checkRequest(query) {
      assert.match(query.get('scope') ?? '', /offline_access/);
    },
  },
  {
    name: 'keycloak (issuer from base URL + realm)',
    async start(callbackUrl) {
      const idp = await startKeycloakStandin({
        realm: 'acme',
        redirectUris: [callbackUrl],
        users: { alice: { sub: 'f3c1-kc', preferred_username: 'alice', email: 'alice@acme.example', email_verified: true, groups: ['/staff'] } },
      });
      return { idp, provider: { type: 'keycloak', baseUrl: new URL(idp.issuer).origin, realm: 'acme', ...client } };
    },
    userId: 'keycloak:f3c1-kc',
    email: 'alice@acme.example',
    emailVerified: true,
    groups: ['/staff'],
    checkRequest() {},
  },
  {
    name: 'auth0 (audience, trailing-slash issuer)',
    async start(callbackUrl) {
      const auth0 = await startAuth0Standin({
        redirectUris: [callbackUrl],
        users: { alice: { sub: 'auth0|5f7c', email: 'alice@example.com', email_verified: true, name: 'Alice A' } },
      });
      assert.ok(auth0.idp.issuer.endsWith('/'));
      return {
        idp: auth0.idp,
        audiences: auth0.audiences,
        provider: { type: 'auth0', issuer: auth0.idp.issuer, audience: 'https://mcp.example.com/api', ...client },
      };
    },
    userId: 'auth0:auth0|5f7c',
    email: 'alice@example.com',
    emailVerified: true,
    groups: [],
    checkRequest(_query, extra) {
      assert.deepEqual(extra.audiences, ['https://mcp.example.com/api']);
    },
  },
  {
    name: 'authentik (issuer per application slug)',
    async start(callbackUrl) {
      const idp = await startAuthentikStandin({
        slug: 'mcp-gateway',
        redirectUris: [callbackUrl],
        users: { alice: { sub: '9b1d0c', email: 'alice@example.com', email_verified: true, name: 'Alice K', groups: ['authentik Admins'] } },
      });
      return { idp, provider: { type: 'authentik', baseUrl: new URL(idp.issuer).origin, slug: 'mcp-gateway', ...client } };
    },
    userId: 'authentik:9b1d0c',
    email: 'alice@example.com',
    emailVerified: true,
    groups: ['authentik Admins'],
    checkRequest() {},
  },
  {
    name: 'cognito (cognito:groups, string email_verified, no offline_access scope)',
    async start(callbackUrl) {
      const idp = await startCognitoStandin({
        userPoolId: 'eu-west-1_TestPool1',
        redirectUris: [callbackUrl],
        users: { alice: cognitoAlice() },
      });
      return { idp, provider: { type: 'cognito', issuer: idp.issuer, ...client } };
    },
    userId: 'cognito:7d8e-cog',
    email: 'alice@example.com',
    emailVerified: true,
    groups: ['admins', 'mcp'],
    checkRequest(query) {
      assert.doesNotMatch(query.get('scope') ?? '', /offline_access/);
    },
  },
];

/** Cognito sends `email_verified` as the string "true". */
function cognitoAlice(): TestUser {
  const user: TestUser = { sub: '7d8e-cog', email: 'alice@example.com', 'cognito:username': 'alice', 'cognito:groups': ['admins', 'mcp'] };
  user['email_verified' as string] = 'true';
  return user;
}

/** Logs in with the SDK client through the gateway: consent, then `username` at `idp`. */
async function signIn(stack: Stack, idp: OidcIdp, username: string) {
  const oauth = new TestOAuthClientProvider({ mode: 'dcr', clientName: 'IdP preset test' });
  const browser = new Browser({ ca: stack.ca.caPem });
  const mcp = await connectWithLogin({
    mcpUrl: stack.mcpUrl(),
    provider: oauth,
    fetch: stack.fetch,
    login: async (authorizationUrl) => {
      let page = await browser.goto(authorizationUrl, { stopAt: oauth.redirectUrl });
      page = await browser.submitForm(page, { button: 'approve' });
      page = await idp.signIn(browser, page, username, { stopAt: oauth.redirectUrl });
      return page.url;
    },
  });
  return mcp;
}

for (const preset of CASES) {
  describe(preset.name, () => {
    let stack: Stack;
    let idp: OidcIdp;
    let audiences: (string | undefined)[] | undefined;
    const outbound = { close: async () => {} } as { close(): Promise<void> };

    after(async () => {
      await stack?.close();
      await idp?.close();
      await outbound.close();
    });

    test('login through the gateway, identity mapped, IdP tokens refreshed through the token source', async () => {
      stack = await startStack({
        identityProviders: async (callbackUrl) => {
          const started = await preset.start(callbackUrl);
          idp = started.idp;
          audiences = started.audiences;
          return [started.provider];
        },
      });
      const mcp = await signIn(stack, idp, 'alice');
      const whoami = (await mcp.callTool({ name: 'whoami', arguments: {} })).structuredContent as { identity: Record<string, string> };
      await mcp.close();
      assert.equal(whoami.identity['x-user-id'], preset.userId);
      assert.equal(whoami.identity['x-user-email'], preset.email);
      for (const group of preset.groups) assert.match(whoami.identity['x-user-groups'] ?? '', new RegExp(group.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')));

      const user = await stack.gateway.storage.get<UserRecord>(NS.users, preset.userId);
      assert.equal(user?.emailVerified, preset.emailVerified, 'email verification as the IdP stated it');

      // As the gateway sent it, before any stand-in rewrote it.
      const sent = idp.requests.filter((request) => request.method === 'GET' && request.path.endsWith('/auth'));
      assert.equal(sent.length, 1);
      preset.checkRequest(sent[0]!.query, { audiences });

      // The refresh through the token source, with the provider the gateway would build.
      const before = await storedIdpTokens(stack, preset.userId);
      assert.ok(before?.refreshToken, 'the IdP gave a refresh token at login');
      const config = configSchema.parse(stack.config);
      const fetcher = createOutboundFetch({ extraCaPem: stack.ca.caPem, timeoutMs: 5_000 });
      outbound.close = () => fetcher.close();
      const provider = createOidcProvider(config.identityProviders![0] as OidcFamilyConfig, { fetch: fetcher });
      const source = createIdpTokenSource({
        storage: stack.gateway.storage,
        secretBox: new SecretBox(await loadEncryptionKeys(config)),
        providers: [provider],
        logger: createLogger('silent'),
      });
      // Asking for a day of validity makes the hour-long token too short: a refresh is due.
      const refreshed = await source.accessTokenFor(preset.userId, 86_400);
      assert.notEqual(refreshed.accessToken, before.accessToken);
      const afterRefresh = await storedIdpTokens(stack, preset.userId);
      assert.equal(afterRefresh?.accessToken, refreshed.accessToken);
      assert.ok(afterRefresh?.refreshToken);
    });
  });
}

describe('refresh failures through the token source', () => {
  test('a refresh token the IdP no longer accepts asks for a new login; an IdP that is down is temporarily unavailable', async () => {
    let idp!: OidcIdp;
    const stack = await startStack({
      identityProviders: async (callbackUrl) => {
        idp = await startKeycloakStandin({ realm: 'short', redirectUris: [callbackUrl], users: { alice: { email: 'a@example.com' } } });
        return [{ type: 'keycloak', baseUrl: new URL(idp.issuer).origin, realm: 'short', ...client }];
      },
    });
    const fetcher = createOutboundFetch({ extraCaPem: stack.ca.caPem, timeoutMs: 3_000 });
    try {
      const mcp = await signIn(stack, idp, 'alice');
      await mcp.close();
      const config = configSchema.parse(stack.config);
      const logs: string[] = [];
      const source = createIdpTokenSource({
        storage: stack.gateway.storage,
        secretBox: new SecretBox(await loadEncryptionKeys(config)),
        providers: [createOidcProvider(config.identityProviders![0] as OidcFamilyConfig, { fetch: fetcher })],
        logger: createLogger('info', { write: (line: string) => void logs.push(line) }),
      });
      await idp.stop();
      await assert.rejects(
        source.accessTokenFor('keycloak:alice', 86_400),
        (error: Error & { publicCode?: string }) => error.publicCode === 'temporarily_unavailable',
      );
      assert.ok(await storedIdpTokens(stack, 'keycloak:alice'), 'an IdP outage keeps the stored tokens');
      await idp.start();
      // The IdP no longer accepts the refresh token. It would expire by the IdP's own clock, which the
      // gateway's cannot move; revocation at the IdP ends it at once with the same invalid_grant.
      const refreshToken = (await storedIdpTokens(stack, 'keycloak:alice'))?.refreshToken;
      assert.ok(refreshToken);
      await revokeAtIdp(idp, refreshToken, fetcher);
      await assert.rejects(source.accessTokenFor('keycloak:alice', 86_400), IdpReauthenticationRequired);
      assert.ok(
        logs.some((line) => line.includes('"event":"idp_token.refresh_refused"') && line.includes('invalid_grant')),
        logs.join('\n'),
      );
      assert.equal(await storedIdpTokens(stack, 'keycloak:alice'), undefined, 'refused tokens are forgotten');
    } finally {
      await fetcher.close();
      await stack.close();
      await idp.close();
    }
  });
});

describe('the Entra stand-in behaves as Entra does', () => {
  test('resource together with scope is refused (AADSTS9010010); tenant discovery names the template', async () => {
    const entra = await startEntraStandin({ tenantId: randomUUID(), redirectUris: ['https://localhost:1/callback'], users: {} });
    const fetcher = createOutboundFetch({ extraCaPem: (await import('../support/tls.ts').then((m) => m.createTestCa())).caPem, timeoutMs: 3_000 });
    try {
      const url = new URL(`${entra.authority}/common/v2.0/auth`);
      url.search = new URLSearchParams({
        client_id: STANDIN_CLIENT_ID,
        redirect_uri: 'https://localhost:1/callback',
        response_type: 'code',
        scope: 'openid',
        resource: 'api://x',
        state: 's',
      }).toString();
      const response = await fetcher(url, { redirect: 'manual' });
      const location = new URL(response.headers.get('location')!);
      assert.match(location.searchParams.get('error_description') ?? '', /AADSTS9010010/);
      const doc = (await (await fetcher(`${entra.authority}/common/v2.0/.well-known/openid-configuration`)).json()) as {
        issuer: string;
        code_challenge_methods_supported?: unknown;
      };
      assert.equal(doc.issuer, `${entra.authority}/{tenantid}/v2.0`);
      assert.equal(doc.code_challenge_methods_supported, undefined);
    } finally {
      await fetcher.close();
      await entra.idp.close();
    }
  });
});
