/**
 * Who may log in, end to end: the real upstream IdP signs people in, the gateway's access rules (the
 * gateway-wide block and each server's own) decide, refused people get the denied page and the client
 * gets `access_denied` with `iss`, and every refusal is an audit line.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '../../src/observability/logger.ts';
import { NS, type UserRecord } from '../../src/storage/records.ts';
import { Browser, type Page } from '../support/browser.ts';
import { authorizeUrl, inspectAccessToken, mcpInitialize, pkcePair, type Registered, registerPublicClient, tokenRequest } from './oauth.ts';
import { type Stack, startStack } from './stack.ts';

/** Audit lines the gateway wrote, parsed. */
class LogCapture {
  readonly lines: Record<string, unknown>[] = [];
  write(line: string): void {
    this.lines.push(JSON.parse(line) as Record<string, unknown>);
  }
  events(name: string): Record<string, unknown>[] {
    return this.lines.filter((line) => line.event === name);
  }
}

const IDP_USERS = {
  carol: { email: 'carol@example.com', email_verified: true, name: 'Carol', groups: ['engineering'] },
  frank: { email: 'Frank@EXAMPLE.com', email_verified: true, name: 'Frank', groups: ['admins'] },
  dave: { email: 'dave@example.com', email_verified: false, name: 'Dave', groups: ['admins'] },
  erin: { email: 'erin@example.org', email_verified: true, name: 'Erin', groups: ['admins'] },
};

describe('access rules: gateway-wide and per server', () => {
  let stack: Stack;
  const logs = new LogCapture();

  before(async () => {
    stack = await startStack({
      idpUsers: IDP_USERS,
      logger: createLogger('info', logs),
      extraServers: [
        {
          name: 'restricted',
          path: '/restricted',
          upstream: { url: 'demo' },
          scopes: ['mcp:tools'],
          access: { groups: ['admins'], contact: 'the platform team' },
        },
      ],
      configure: (config) => {
        config.access = { emailDomains: ['example.com'], contact: 'it-help@example.com' };
      },
    });
  });
  after(async () => {
    await stack?.close();
  });

  interface Flow {
    browser: Browser;
    client: Registered;
    state: string;
    verifier: string;
    resource: string;
  }

  /** Consent approved and the IdP login done: the page after the gateway's callback (or the client redirect). */
  async function signIn(username: string, path = '/mcp'): Promise<{ flow: Flow; page: Page }> {
    const client = await registerPublicClient(stack);
    const browser = new Browser({ ca: stack.ca.caPem });
    const { verifier, challenge } = pkcePair();
    const state = randomBytes(8).toString('hex');
    const resource = stack.mcpUrl(path);
    const url = authorizeUrl(stack, {
      response_type: 'code',
      client_id: client.client_id,
      redirect_uri: client.redirect_uris[0],
      code_challenge: challenge,
      code_challenge_method: 'S256',
      state,
      scope: 'mcp:tools',
      resource,
    });
    let page = await browser.goto(url, { stopAt: client.redirect_uris[0]! });
    page = await browser.submitForm(page, { button: 'approve' });
    page = await stack.idp.signIn(browser, page, username, { stopAt: client.redirect_uris[0]! });
    return { flow: { browser, client, state, verifier, resource }, page };
  }

  async function exchange(flow: Flow, page: Page) {
    assert.ok(page.stopped, `expected the client redirect, got ${page}`);
    assert.equal(page.url.searchParams.get('state'), flow.state);
    const code = page.url.searchParams.get('code');
    assert.ok(code, page.url.href);
    return tokenRequest(stack, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: flow.client.redirect_uris[0]!,
      code_verifier: flow.verifier,
      client_id: flow.client.client_id,
      resource: flow.resource,
    });
  }

  async function expectDenied(flow: Flow, page: Page, server: string, account: string, contact: string) {
    assert.equal(page.status, 403, String(page));
    assert.equal(page.url.pathname, '/callback');
    assert.match(page.text, new RegExp(`may not use ${server}`));
    assert.ok(page.text.includes(account), `the page names the account: ${page.text}`);
    assert.ok(page.text.includes('Example Corp SSO'), 'and the provider');
    assert.ok(page.text.includes(contact), `and whom to ask: ${page.text}`);
    assert.match(page.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
    const back = await flow.browser.submitForm(page, { button: 'return', stopAt: flow.client.redirect_uris[0]! });
    assert.ok(back.stopped, String(back));
    assert.equal(back.url.searchParams.get('error'), 'access_denied');
    assert.equal(back.url.searchParams.get('state'), flow.state);
    assert.equal(back.url.searchParams.get('iss'), stack.issuer);
    assert.equal(back.url.searchParams.get('code'), null);
  }

  test('a verified address in the allowed domain gets through to the MCP server', async () => {
    const { flow, page } = await signIn('carol');
    const tokens = await exchange(flow, page);
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    const accessToken = String(tokens.body.access_token);
    assert.equal(inspectAccessToken(accessToken).claims.sub, 'corp:carol');
    assert.equal((await mcpInitialize(stack.mcpUrl(), accessToken)).status, 200);
    const succeeded = logs.events('login.succeeded').at(-1);
    assert.equal(succeeded?.user, 'corp:carol');
    assert.equal(succeeded?.rule, 'gateway emailDomains:example.com');
  });

  test('an unverified address in the allowed domain is refused: denied page, access_denied at the client, audit line, nothing stored', async () => {
    const before = logs.events('login.denied').length;
    const { flow, page } = await signIn('dave');
    await expectDenied(flow, page, 'tools', 'dave@example.com', 'it-help@example.com');
    const denied = logs.events('login.denied').slice(before);
    assert.equal(denied.length, 1);
    assert.equal(denied[0]?.userId, 'corp:dave');
    assert.equal(denied[0]?.provider, 'corp');
    assert.equal(denied[0]?.server, 'tools');
    assert.match(String(denied[0]?.reason), /^gateway access: .*not verified/);
    assert.equal(await stack.gateway.storage.get<UserRecord>(NS.users, 'corp:dave'), undefined, 'a refused login records no user');
    assert.equal(await stack.gateway.storage.get(NS.idpTokens, 'corp:dave'), undefined, 'nor IdP tokens');
  });

  test('an address outside the allowed domain is refused', async () => {
    const before = logs.events('login.denied').length;
    const { flow, page } = await signIn('erin');
    await expectDenied(flow, page, 'tools', 'erin@example.org', 'it-help@example.com');
    assert.equal(logs.events('login.denied').slice(before)[0]?.userId, 'corp:erin');
  });

  test("a server's own rule refuses one person and admits another; the gateway rule still applies", async () => {
    const carol = await signIn('carol', '/restricted');
    await expectDenied(carol.flow, carol.page, 'restricted', 'carol@example.com', 'the platform team');
    const denied = logs.events('login.denied').at(-1);
    assert.equal(denied?.server, 'restricted');
    assert.match(String(denied?.reason), /^server access: no rule matched \(tried groups\)/);

    const frank = await signIn('frank', '/restricted');
    const tokens = await exchange(frank.flow, frank.page);
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    assert.equal((await mcpInitialize(stack.mcpUrl('/restricted'), String(tokens.body.access_token))).status, 200);
    assert.equal(logs.events('login.succeeded').at(-1)?.rule, 'gateway emailDomains:example.com, server groups:admins');

    // Erin is in `admins` but outside the gateway's domain: both blocks must allow.
    const erin = await signIn('erin', '/restricted');
    assert.equal(erin.page.status, 403);
    assert.match(String(logs.events('login.denied').at(-1)?.reason), /^gateway access:/);
  });

  test("the denied page's return form cannot be forged", async () => {
    const { flow, page } = await signIn('erin');
    assert.equal(page.status, 403);
    const forged = await flow.browser.submitForm(page, { button: 'return', fields: { csrf: 'forged' } });
    assert.equal(forged.status, 403);
    // The consent form's token is not the denied page's: a step's token verifies for that step only.
    const wrongStep = await flow.browser.submitForm(page, { button: 'return', fields: { step: 'sign-in' }, stopAt: flow.client.redirect_uris[0]! });
    assert.equal(wrongStep.status, 403);
  });
  test('the rules are checked again at refresh: tightening one ends existing sessions at the next refresh', async () => {
    const frank = await signIn('frank', '/restricted');
    const tokens = await exchange(frank.flow, frank.page);
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    const refresh = (refreshToken: unknown) =>
      tokenRequest(stack, {
        grant_type: 'refresh_token',
        refresh_token: String(refreshToken),
        client_id: frank.flow.client.client_id,
        resource: frank.flow.resource,
      });
    const stillAllowed = await refresh(tokens.body.refresh_token);
    assert.equal(stillAllowed.status, 200, JSON.stringify(stillAllowed.body));

    const restricted = stack.config.servers?.find((server) => server.name === 'restricted');
    assert.ok(restricted);
    const previous = restricted.access;
    restricted.access = { groups: ['nobody-yet'] };
    try {
      await stack.restartGateway();
      const before = logs.events('refresh.denied').length;
      const refused = await refresh(stillAllowed.body.refresh_token);
      assert.equal(refused.status, 400, JSON.stringify(refused.body));
      assert.equal(refused.body.error, 'invalid_grant');
      const denied = logs.events('refresh.denied').slice(before);
      assert.equal(denied.length, 1);
      assert.equal(denied[0]?.userId, 'corp:frank');
      assert.equal(denied[0]?.server, 'restricted');
      assert.match(String(denied[0]?.reason), /^server access: no rule matched/);
    } finally {
      restricted.access = previous;
      await stack.restartGateway();
    }
  });
});
