/**
 * The built-in local identity provider, through a real HTTP server: the sign-in page, password checks,
 * lockout, the one-time code and its redemption by the callback.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import { configSchema, type LocalProviderConfig } from '../../../src/config/schema.ts';
import { LocalIdentityProvider } from '../../../src/idp/local.ts';
import { hashPassword } from '../../../src/idp/passwords.ts';
import { IdpLoginError, type IdpLoginState } from '../../../src/idp/types.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { MemoryStorage } from '../../../src/storage/memory.ts';
import { NS } from '../../../src/storage/records.ts';

const ISSUER = 'http://127.0.0.1:1'; // only used to build URLs; requests go to the test server
const CALLBACK = `${ISSUER}/callback`;
const SECRET = 'k'.repeat(32);
const MAX_FAILURES = 3;

let aliceHash = '';
let storage: MemoryStorage;
let server: Server;
let base = '';
let providers: Map<string, LocalIdentityProvider>;

function providerConfig(overrides: Record<string, unknown> = {}): LocalProviderConfig {
  const config = configSchema.parse({
    identityProviders: [
      {
        type: 'local',
        displayName: 'Team <script>alert(1)</script> accounts',
        maxFailedAttempts: MAX_FAILURES,
        lockoutWindow: 600,
        users: [{ username: 'Alice', passwordHash: aliceHash, email: 'alice@example.com', name: 'Alice A.', groups: ['admins'] }],
        ...overrides,
      },
    ],
  }).identityProviders?.[0];
  assert.ok(config?.type === 'local');
  return config;
}

function makeProvider(config: LocalProviderConfig): LocalIdentityProvider {
  return new LocalIdentityProvider({
    config,
    storage,
    issuer: ISSUER,
    cookieSecret: SECRET,
    branding: { productName: 'Test Gateway' },
    logger: createLogger('silent'),
    // Tests pick their "client address" per request, to exercise the per-address limit separately.
    clientAddress: (req) => (req.headers['x-test-address'] as string | undefined) ?? req.socket.remoteAddress,
  });
}

before(async () => {
  aliceHash = await hashPassword('alice-password');
  server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', ISSUER);
    const match = /^\/sign-in\/([a-z0-9-]+)$/.exec(url.pathname);
    const provider = match?.[1] ? providers.get(match[1]) : undefined;
    if (!provider) {
      res.writeHead(404).end();
      return;
    }
    const handler = req.method === 'POST' ? provider.handleSignInSubmit(req, res, url) : provider.handleSignInPage(req, res, url);
    handler.catch((error: unknown) => {
      res.writeHead(500).end(String(error));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  storage = new MemoryStorage();
  providers = new Map([['local', makeProvider(providerConfig())]]);
});

let stateCounter = 0;
/** A login the authorization side has started; returns its state. */
async function pendingLogin(): Promise<IdpLoginState> {
  const login = { state: `state-${++stateCounter}-${Date.now()}`, codeVerifier: 'v', nonce: 'n' };
  await storage.set(NS.pendingLogins, login.state, 'sealed pending login', 600);
  return login;
}

async function getPage(state: string, provider = 'local'): Promise<{ status: number; body: string; headers: Headers }> {
  const response = await fetch(`${base}/sign-in/${provider}?state=${encodeURIComponent(state)}`);
  return { status: response.status, body: await response.text(), headers: response.headers };
}

function field(body: string, name: string): string {
  const match = new RegExp(`name="${name}" value="([^"]*)"`).exec(body);
  assert.ok(match, `no ${name} field`);
  return match[1]!.replaceAll('&amp;', '&');
}

async function submit(
  fields: Record<string, string>,
  options: { address?: string; provider?: string } = {},
): Promise<{ status: number; body: string; location: string | null; headers: Headers }> {
  const response = await fetch(`${base}/sign-in/${options.provider ?? 'local'}`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(options.address ? { 'x-test-address': options.address } : {}) },
    body: new URLSearchParams(fields).toString(),
  });
  return { status: response.status, body: await response.text(), location: response.headers.get('location'), headers: response.headers };
}

/** Loads the form for `state` and posts it with these credentials. */
async function signIn(state: string, username: string, password: string, options: { address?: string; provider?: string } = {}) {
  const page = await getPage(state, options.provider);
  assert.equal(page.status, 200);
  return submit({ state: field(page.body, 'state'), csrf: field(page.body, 'csrf'), username, password }, options);
}

describe('local identity provider', () => {
  test('authorizationUrl points at the sign-in page with the state', async () => {
    const provider = providers.get('local')!;
    const url = await provider.authorizationUrl({ state: 'abc', codeVerifier: 'v', nonce: 'n' }, CALLBACK);
    assert.equal(url.href, `${ISSUER}/sign-in/local?state=abc`);
    await assert.rejects(provider.authorizationUrl({ state: 'abc', codeVerifier: 'v', nonce: 'n' }, 'https://evil.example/callback'));
  });

  test('the sign-in page has an accessible form and escapes what it shows', async () => {
    const login = await pendingLogin();
    const page = await getPage(login.state);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    assert.equal(page.headers.get('cache-control'), 'no-store');
    assert.match(page.body, /<form method="post" action="\/sign-in\/local">/);
    assert.match(page.body, /<label for="username">Username<\/label>/);
    assert.match(page.body, /<input type="text" id="username" name="username"[^>]* autocomplete="username"/);
    assert.match(page.body, /<label for="password">Password<\/label>/);
    assert.match(page.body, /<input type="password" id="password" name="password" autocomplete="current-password"/);
    assert.equal(field(page.body, 'state'), login.state);
    assert.match(field(page.body, 'csrf'), /^[A-Za-z0-9_-]{43}$/);
    assert.ok(page.body.includes('Team &lt;script&gt;alert(1)&lt;/script&gt; accounts'));
    assert.ok(!page.body.includes('<script'));
  });

  test('a sign-in whose pending login is gone gets a clear error page', async () => {
    const missing = await getPage('no-such-state');
    assert.equal(missing.status, 400);
    assert.match(missing.body, /This sign-in has expired/);
    assert.ok(!missing.body.includes('<form'));

    const login = await pendingLogin();
    const page = await getPage(login.state);
    await storage.delete(NS.pendingLogins, login.state);
    const posted = await submit({ state: login.state, csrf: field(page.body, 'csrf'), username: 'alice', password: 'alice-password' });
    assert.equal(posted.status, 400);
    assert.match(posted.body, /expired or was already used/);
  });

  test('a post without the right CSRF token is refused', async () => {
    const login = await pendingLogin();
    const other = await pendingLogin();
    const otherPage = await getPage(other.state);
    const forged = await submit({ state: login.state, csrf: field(otherPage.body, 'csrf'), username: 'alice', password: 'alice-password' });
    assert.equal(forged.status, 403);
    assert.equal(forged.location, null);
    const missing = await submit({ state: login.state, username: 'alice', password: 'alice-password' });
    assert.equal(missing.status, 403);
  });

  test('a wrong password and an unknown user get the same generic 401', async () => {
    const login = await pendingLogin();
    const wrong = await signIn(login.state, 'alice', 'nope', { address: '192.0.2.1' });
    const unknown = await signIn(login.state, 'mallory', 'nope', { address: '192.0.2.2' });
    for (const response of [wrong, unknown]) {
      assert.equal(response.status, 401);
      assert.equal(response.location, null);
      assert.match(response.body, /The username or password is incorrect\./);
      assert.match(response.body, /role="alert"/);
      assert.match(response.body, /aria-invalid="true"/);
      assert.ok(!response.body.includes('nope'), 'the password is never echoed');
    }
    assert.equal(wrong.body.replace(/value="[^"]*"/g, ''), unknown.body.replace(/value="[^"]*"/g, ''));
  });

  test('after maxFailedAttempts failures the user is locked out, even with the right password', async () => {
    const login = await pendingLogin();
    for (let attempt = 1; attempt <= MAX_FAILURES; attempt++) {
      const failed = await signIn(login.state, 'alice', `wrong-${attempt}`, { address: `198.51.100.${attempt}` });
      assert.equal(failed.status, 401);
    }
    const locked = await signIn(login.state, 'alice', 'alice-password', { address: '198.51.100.99' });
    assert.equal(locked.status, 429);
    assert.equal(locked.location, null);
    assert.match(locked.body, /Too many failed sign-in attempts\. Wait 10 minutes/);
    assert.equal(locked.headers.get('retry-after'), '600');
    // The username is case-insensitive, so the lockout is too.
    assert.equal((await signIn(login.state, 'ALICE', 'alice-password', { address: '198.51.100.98' })).status, 429);
  });

  test('failures from one address lock that address for every username', async () => {
    const login = await pendingLogin();
    for (let attempt = 1; attempt <= MAX_FAILURES; attempt++) {
      assert.equal((await signIn(login.state, `user${attempt}`, 'guess', { address: '203.0.113.7' })).status, 401);
    }
    assert.equal((await signIn(login.state, 'alice', 'alice-password', { address: '203.0.113.7' })).status, 429);
    // Another address is unaffected.
    assert.equal((await signIn(login.state, 'alice', 'alice-password', { address: '203.0.113.8' })).status, 303);
  });

  test('parallel guesses cannot overshoot the limit', async () => {
    const login = await pendingLogin();
    const page = await getPage(login.state);
    const fields = { state: login.state, csrf: field(page.body, 'csrf'), username: 'alice' };
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, index) => submit({ ...fields, password: `guess-${index}` }, { address: `2001:db8::${index + 1}` })),
    );
    const statuses = results.map((result) => result.status).sort();
    assert.deepEqual(statuses, [...Array(MAX_FAILURES).fill(401), ...Array(8 - MAX_FAILURES).fill(429)]);
  });

  test('the right password redirects to the callback with a one-time code', async () => {
    const login = await pendingLogin();
    const response = await signIn(login.state, 'alice', 'alice-password');
    assert.equal(response.status, 303);
    assert.ok(response.location);
    const location = new URL(response.location);
    assert.equal(`${location.origin}${location.pathname}`, CALLBACK);
    assert.equal(location.searchParams.get('state'), login.state);
    assert.match(location.searchParams.get('code') ?? '', /^[A-Za-z0-9_-]{43}$/);
    // The pending login is left for the callback to consume.
    assert.notEqual(await storage.get(NS.pendingLogins, login.state), undefined);

    const provider = providers.get('local')!;
    const result = await provider.completeLogin(location, login, CALLBACK);
    assert.deepEqual(result, {
      identity: { subject: 'Alice', email: 'alice@example.com', emailVerified: true, name: 'Alice A.', groups: ['admins'] },
      tokens: {},
    });
    // Single use.
    await assert.rejects(
      provider.completeLogin(location, login, CALLBACK),
      (error: unknown) => error instanceof IdpLoginError && error.publicCode === 'access_denied',
    );
  });

  test('a code is refused for another login, and is burnt by the attempt', async () => {
    const login = await pendingLogin();
    const other = await pendingLogin();
    const response = await signIn(login.state, 'alice', 'alice-password');
    const location = new URL(response.location!);
    const provider = providers.get('local')!;
    await assert.rejects(provider.completeLogin(location, other, CALLBACK), IdpLoginError);
    await assert.rejects(provider.completeLogin(location, login, CALLBACK), IdpLoginError);
  });

  test('a code from another local provider is refused', async () => {
    providers.set('staff', makeProvider(providerConfig({ id: 'staff' })));
    const login = await pendingLogin();
    const response = await signIn(login.state, 'alice', 'alice-password', { provider: 'staff' });
    assert.equal(response.status, 303);
    await assert.rejects(providers.get('local')!.completeLogin(new URL(response.location!), login, CALLBACK), IdpLoginError);
  });

  test('a missing or unknown code is refused', async () => {
    const login = await pendingLogin();
    const provider = providers.get('local')!;
    await assert.rejects(provider.completeLogin(new URL(`${CALLBACK}?state=${login.state}`), login, CALLBACK), IdpLoginError);
    await assert.rejects(provider.completeLogin(new URL(`${CALLBACK}?state=${login.state}&code=forged`), login, CALLBACK), IdpLoginError);
  });

  test('form bodies are capped and must be form-encoded', async () => {
    const login = await pendingLogin();
    const big = await submit({ state: login.state, csrf: 'x', username: 'alice', password: 'p'.repeat(9000) });
    assert.equal(big.status, 413);
    const json = await fetch(`${base}/sign-in/local`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(json.status, 415);
  });

  test('empty fields re-show the form without counting a failure', async () => {
    const login = await pendingLogin();
    for (let attempt = 0; attempt <= MAX_FAILURES; attempt++) {
      const response = await signIn(login.state, 'alice', '');
      assert.equal(response.status, 400);
      assert.match(response.body, /Enter your username and password/);
    }
    assert.equal((await signIn(login.state, 'alice', 'alice-password')).status, 303);
  });
});
