/**
 * How an identity provider's refusals and failures reach the MCP client through the gateway: a clear
 * OAuth error at the client's redirect URI (access_denied, temporarily_unavailable, server_error),
 * never the IdP's own words, and the reason in the gateway's logs (event `login.failed`, `detail`).
 * Also Entra's groups overage read from the Graph stand-in.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import type { GatewayConfigInput } from '../../src/config/schema.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Browser } from '../support/browser.ts';
import type { EntraStandin, TamperingIdp } from '../support/idp-standins.ts';
import { STANDIN_CLIENT_ID, STANDIN_CLIENT_SECRET, startEntraStandin, startGoogleStandin, startTamperingIdp } from '../support/idp-standins.ts';
import { AuthorizationRedirectError, connectWithLogin, TestOAuthClientProvider } from '../support/mcp-client.ts';
import type { OidcIdp } from '../support/oidc-idp.ts';
import type { Stack } from './stack.ts';
import { startStack } from './stack.ts';

type ProviderInput = NonNullable<GatewayConfigInput['identityProviders']>[number];
const client = { clientId: STANDIN_CLIENT_ID, clientSecret: STANDIN_CLIENT_SECRET };

interface Harness {
  stack: Stack;
  logs: string[];
  close(): Promise<void>;
}

/** A gateway whose only provider is what `setUp` returns; logs captured. */
async function harness(setUp: (callbackUrl: string) => Promise<{ provider: ProviderInput; close(): Promise<void> }>): Promise<Harness> {
  const logs: string[] = [];
  let closeIdp: () => Promise<void> = async () => {};
  let stack: Stack;
  try {
    stack = await startStack({
      logger: createLogger('info', { write: (line: string) => void logs.push(line) }),
      identityProviders: async (callbackUrl) => {
        const started = await setUp(callbackUrl);
        closeIdp = started.close;
        return [started.provider];
      },
    });
  } catch (error) {
    await closeIdp(); // a stand-in left listening would keep the test process alive
    throw error;
  }
  return {
    stack,
    logs,
    async close() {
      await stack.close();
      await closeIdp();
    },
  };
}

/**
 * The SDK client's login through consent and the IdP; `beforeCallback` runs once the IdP has
 * redirected to the gateway's callback (not yet followed). Returns the client, or the redirect error.
 */
async function login(stack: Stack, idp: OidcIdp, username: string, beforeCallback?: () => Promise<void>) {
  const oauth = new TestOAuthClientProvider({ mode: 'dcr', clientName: 'IdP failure test' });
  const browser = new Browser({ ca: stack.ca.caPem });
  try {
    const mcp = await connectWithLogin({
      mcpUrl: stack.mcpUrl(),
      provider: oauth,
      fetch: stack.fetch,
      login: async (authorizationUrl) => {
        let page = await browser.goto(authorizationUrl, { stopAt: oauth.redirectUrl });
        page = await browser.submitForm(page, { button: 'approve' });
        page = await idp.signIn(browser, page, username, { stopAt: (url) => url.pathname === '/callback' && url.origin === new URL(stack.issuer).origin });
        await beforeCallback?.();
        page = await browser.goto(page.url, { stopAt: oauth.redirectUrl });
        return page.url;
      },
    });
    return { mcp };
  } catch (error) {
    if (error instanceof AuthorizationRedirectError) return { error };
    throw error;
  }
}

function failureLog(logs: string[]): Record<string, unknown> {
  const line = logs.find((entry) => entry.includes('"event":"login.failed"'));
  assert.ok(line, `no login.failed event in:\n${logs.join('\n')}`);
  return JSON.parse(line) as Record<string, unknown>;
}

describe('Entra', () => {
  test('a user of a tenant not in allowedTenants: access_denied for the client, the tenant in the logs', async () => {
    const allowed = randomUUID();
    const other = randomUUID();
    let entra!: EntraStandin;
    const h = await harness(async (callbackUrl) => {
      entra = await startEntraStandin({ tenantId: other, redirectUris: [callbackUrl], users: { mallory: { email: 'm@other.example' } } });
      return {
        provider: { type: 'entra', tenant: 'organizations', allowedTenants: [allowed], authority: entra.authority, ...client },
        close: () => entra.idp.close(),
      };
    });
    try {
      const result = await login(h.stack, entra.idp, 'mallory');
      assert.equal(result.error?.error, 'access_denied');
      assert.doesNotMatch(result.error?.errorDescription ?? '', new RegExp(other), 'the client is not told the tenant');
      const logged = failureLog(h.logs);
      assert.equal(logged.reason, 'access_denied');
      assert.match(String(logged.detail), new RegExp(`tenant \\(tid\\) ${other} is not in allowedTenants`));
    } finally {
      await h.close();
    }
  });

  test("groups overage: groups read from the Graph stand-in (all pages) with the user's token", async () => {
    let entra!: EntraStandin;
    const tenant = randomUUID();
    const many = ['g1', 'g2', 'g3', 'g4', 'g5'];
    const h = await harness(async (callbackUrl) => {
      entra = await startEntraStandin({
        tenantId: tenant,
        redirectUris: [callbackUrl],
        users: { alice: { oid: 'oid-alice', overage: true, groups: many, roles: ['Mcp.User'] } },
      });
      return {
        provider: { type: 'entra', tenant, authority: entra.authority, graphGroups: true, graphUrl: entra.graphUrl, ...client },
        close: () => entra.idp.close(),
      };
    });
    try {
      const { mcp } = await login(h.stack, entra.idp, 'alice');
      assert.ok(mcp);
      const whoami = (await mcp.callTool({ name: 'whoami', arguments: {} })).structuredContent as { identity: Record<string, string> };
      await mcp.close();
      assert.equal(whoami.identity['x-user-id'], 'entra:oid-alice');
      for (const group of [...many, 'Mcp.User']) assert.match(whoami.identity['x-user-groups'] ?? '', new RegExp(`\\b${group.replace('.', '\\.')}\\b`));
      assert.equal(entra.graphRequests.length, 3, 'five groups, two per page');
      assert.ok(entra.graphRequests.every((value) => value.startsWith('Bearer ')));
    } finally {
      await h.close();
    }
  });

  test('groups overage without graphGroups: the login goes on with the roles only, and a warning says why', async () => {
    let entra!: EntraStandin;
    const tenant = randomUUID();
    const h = await harness(async (callbackUrl) => {
      entra = await startEntraStandin({
        tenantId: tenant,
        redirectUris: [callbackUrl],
        users: { alice: { oid: 'oid-a', overage: true, groups: ['g1'], roles: ['Mcp.User'] } },
      });
      return { provider: { type: 'entra', tenant, authority: entra.authority, ...client }, close: () => entra.idp.close() };
    });
    try {
      const { mcp } = await login(h.stack, entra.idp, 'alice');
      assert.ok(mcp);
      const whoami = (await mcp.callTool({ name: 'whoami', arguments: {} })).structuredContent as { identity: Record<string, string> };
      await mcp.close();
      assert.equal(whoami.identity['x-user-groups'], 'Mcp.User');
      assert.equal(entra.graphRequests.length, 0);
      assert.ok(h.logs.some((line) => line.includes('"event":"login.groups_overage"') && line.includes('graphGroups')));
    } finally {
      await h.close();
    }
  });

  test('Graph down during an overage login: temporarily_unavailable', async () => {
    let entra!: EntraStandin;
    const tenant = randomUUID();
    const h = await harness(async (callbackUrl) => {
      entra = await startEntraStandin({ tenantId: tenant, redirectUris: [callbackUrl], users: { alice: { overage: true, groups: ['g1'] } } });
      entra.graphStatus = 503;
      return {
        provider: { type: 'entra', tenant, authority: entra.authority, graphGroups: true, graphUrl: entra.graphUrl, ...client },
        close: () => entra.idp.close(),
      };
    });
    try {
      const result = await login(h.stack, entra.idp, 'alice');
      assert.equal(result.error?.error, 'temporarily_unavailable');
      assert.match(String(failureLog(h.logs).detail), /Graph groups request answered 503/);
    } finally {
      await h.close();
    }
  });
});

describe('Google', () => {
  test('an account outside hostedDomain is refused with access_denied; the hd in the logs', async () => {
    let idp!: OidcIdp;
    const h = await harness(async (callbackUrl) => {
      idp = await startGoogleStandin({
        redirectUris: [callbackUrl],
        users: {
          gmail: { sub: '1001', email: 'someone@gmail.com', email_verified: true },
          other: { sub: '1002', email: 'x@other.example', email_verified: true, hd: 'other.example' },
        },
      });
      return { provider: { type: 'google', hostedDomain: 'example.com', issuer: idp.issuer, ...client }, close: () => idp.close() };
    });
    try {
      const personal = await login(h.stack, idp, 'gmail');
      assert.equal(personal.error?.error, 'access_denied');
      assert.match(String(failureLog(h.logs).detail), /no Google Workspace domain \(hd\); hostedDomain example\.com is required/);
      h.logs.length = 0;
      const otherDomain = await login(h.stack, idp, 'other');
      assert.equal(otherDomain.error?.error, 'access_denied');
      assert.match(String(failureLog(h.logs).detail), /hd\) other\.example is not hostedDomain example\.com/);
    } finally {
      await h.close();
    }
  });
});

describe('any OIDC provider', () => {
  test('the IdP down between its login and the code exchange: temporarily_unavailable, not invalid_grant', async () => {
    let tampering!: TamperingIdp;
    const h = await harness(async (callbackUrl) => {
      tampering = await startTamperingIdp({ redirectUris: [callbackUrl], users: { alice: { email: 'alice@example.com' } } });
      return { provider: { type: 'okta', issuer: tampering.idp.issuer, ...client }, close: () => tampering.idp.close() };
    });
    try {
      const result = await login(h.stack, tampering.idp, 'alice', () => tampering.idp.stop());
      assert.equal(result.error?.error, 'temporarily_unavailable');
      assert.match(String(failureLog(h.logs).detail), /token endpoint request failed/);
    } finally {
      await h.close();
    }
  });

  test('an ID token for another audience is refused; the logs name the audience check and both values', async () => {
    let tampering!: TamperingIdp;
    const h = await harness(async (callbackUrl) => {
      tampering = await startTamperingIdp({ redirectUris: [callbackUrl], users: { alice: { email: 'alice@example.com' } } });
      tampering.alter = (claims) => ({ ...claims, aud: 'some-other-app' });
      return { provider: { type: 'oidc', issuer: tampering.idp.issuer, ...client }, close: () => tampering.idp.close() };
    });
    try {
      const result = await login(h.stack, tampering.idp, 'alice');
      assert.equal(result.error?.error, 'server_error');
      assert.doesNotMatch(result.error?.errorDescription ?? '', /aud/);
      const detail = String(failureLog(h.logs).detail);
      assert.match(detail, /check: audience/);
      assert.match(detail, new RegExp(`expected "${STANDIN_CLIENT_ID}"`));
      assert.match(detail, /got "some-other-app"/);
    } finally {
      await h.close();
    }
  });

  test('an ID token from another issuer is refused; the logs name the issuer check and both values', async () => {
    let tampering!: TamperingIdp;
    const h = await harness(async (callbackUrl) => {
      tampering = await startTamperingIdp({ redirectUris: [callbackUrl], users: { alice: { email: 'alice@example.com' } } });
      tampering.alter = (claims) => ({ ...claims, iss: 'https://evil.example' });
      return { provider: { type: 'oidc', issuer: tampering.idp.issuer, ...client }, close: () => tampering.idp.close() };
    });
    try {
      const result = await login(h.stack, tampering.idp, 'alice');
      assert.equal(result.error?.error, 'server_error');
      const detail = String(failureLog(h.logs).detail);
      assert.match(detail, /check: issuer, claim iss/);
      assert.ok(detail.includes(`expected "${tampering.idp.issuer}"`), detail);
      assert.match(detail, /got "https:\/\/evil\.example"/);
    } finally {
      await h.close();
    }
  });

  test('an ID token past its expiry beyond clockTolerance is refused (logged as expiry/clock skew); within it, accepted', async () => {
    let tampering!: TamperingIdp;
    // The IdP's clock runs 2 minutes behind the gateway's: its tokens look expired on arrival.
    const behind = (claims: Record<string, unknown>) => ({ ...claims, iat: Number(claims.iat) - 3720, exp: Math.floor(Date.now() / 1000) - 120 });
    const strict = await harness(async (callbackUrl) => {
      tampering = await startTamperingIdp({ redirectUris: [callbackUrl], users: { alice: { email: 'alice@example.com' } } });
      tampering.alter = behind;
      return { provider: { type: 'oidc', issuer: tampering.idp.issuer, clockTolerance: 30, ...client }, close: () => tampering.idp.close() };
    });
    try {
      const result = await login(strict.stack, tampering.idp, 'alice');
      assert.equal(result.error?.error, 'server_error');
      const detail = String(failureLog(strict.logs).detail);
      assert.match(detail, /check: expiry \(or clock skew beyond clockTolerance\)/);
      assert.match(detail, /tolerance 30s/);
    } finally {
      await strict.close();
    }
    const lenient = await harness(async (callbackUrl) => {
      tampering = await startTamperingIdp({ redirectUris: [callbackUrl], users: { alice: { email: 'alice@example.com' } } });
      tampering.alter = behind;
      return { provider: { type: 'oidc', issuer: tampering.idp.issuer, clockTolerance: 300, ...client }, close: () => tampering.idp.close() };
    });
    try {
      const { mcp } = await login(lenient.stack, tampering.idp, 'alice');
      assert.ok(mcp, 'accepted within clockTolerance');
      await mcp.close();
    } finally {
      await lenient.close();
    }
  });
});
