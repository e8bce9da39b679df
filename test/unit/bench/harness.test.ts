/**
 * The test harness itself: end-to-end tests trust the cookie jar, the HTML form parser and the
 * browser's redirect handling to behave like Chromium, so those rules are pinned down here.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { after, before, describe, test } from 'node:test';
import { DemoInMemoryAuthProvider } from '@modelcontextprotocol/sdk/examples/server/demoInMemoryOAuthProvider.js';
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js';
import { getOAuthProtectedResourceMetadataUrl, mcpAuthRouter } from '@modelcontextprotocol/sdk/server/auth/router.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { createMcpExpressApp } from '@modelcontextprotocol/sdk/server/express.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { Browser } from '../../support/browser.ts';
import { startCimdHost } from '../../support/cimd-host.ts';
import type { CookieRequestContext } from '../../support/cookies.ts';
import { CookieJar } from '../../support/cookies.ts';
import { formEntries, parseDocument } from '../../support/html.ts';
import { connectWithLogin, TestOAuthClientProvider } from '../../support/mcp-client.ts';
import { closeServer, freePort, listen } from '../../support/ports.ts';
import { createTestCa, createTrustingFetch } from '../../support/tls.ts';

const SAME_SITE_GET: CookieRequestContext = { sameSite: true, method: 'GET', topLevelNavigation: true };

function stored(jar: CookieJar, url: string, header: string): boolean {
  return jar.set(url, header).outcome === 'stored';
}

describe('cookie jar', () => {
  test('__Host- cookies need Secure, Path=/ and no Domain', () => {
    const jar = new CookieJar();
    assert.equal(stored(jar, 'https://gw.example.com/a', '__Host-c=1; Path=/'), false, 'no Secure');
    assert.equal(stored(jar, 'https://gw.example.com/a', '__Host-c=1; Secure; Path=/; Domain=gw.example.com'), false, 'Domain');
    assert.equal(stored(jar, 'https://gw.example.com/a', '__Host-c=1; Secure; Path=/a'), false, 'Path other than /');
    assert.equal(stored(jar, 'https://gw.example.com/a/b', '__Host-c=1; Secure'), false, 'default path /a is not /');
    assert.equal(stored(jar, 'https://gw.example.com/a', '__HOST-c=1; Path=/'), false, 'prefix is case-insensitive');
    assert.equal(stored(jar, 'http://gw.example.com/', '__Host-c=1; Secure; Path=/'), false, 'Secure from plain http');
    assert.equal(stored(jar, 'https://gw.example.com/a', '__Host-c=1; Secure; Path=/; HttpOnly; SameSite=Lax'), true);
    assert.equal(jar.rejected.length, 6);
    assert.match(jar.rejected[0]!.reason, /__Host-/);
  });

  test('Secure cookies are accepted and sent on http loopback (Chromium), not on other http hosts', () => {
    const jar = new CookieJar();
    assert.equal(stored(jar, 'http://localhost:8080/', '__Host-consent=v; Secure; Path=/; HttpOnly; SameSite=Lax'), true);
    assert.equal(stored(jar, 'http://127.0.0.1:8080/', '__Secure-x=1; Secure; Path=/'), true);
    assert.equal(stored(jar, 'http://example.com/', '__Secure-x=1; Secure'), false);
    assert.equal(jar.header('http://localhost:9999/anything'), '__Host-consent=v', 'ports do not separate cookies');
    const https = new CookieJar();
    https.set('https://example.com/', 's=1; Secure');
    assert.equal(https.header('http://example.com/'), undefined, 'Secure not sent over http');
    assert.equal(https.header('https://example.com/'), 's=1');
  });

  test('Path scoping and default path', () => {
    const jar = new CookieJar();
    jar.set('https://idp.test/interaction/abc', 'i=1; Path=/interaction/abc; Secure');
    jar.set('https://idp.test/auth/start/here', 'd=1; Secure');
    jar.set('https://idp.test/', 'root=1; Path=/');
    assert.equal(jar.header('https://idp.test/interaction/abc'), 'i=1; root=1', 'longer path first');
    assert.equal(jar.header('https://idp.test/interaction/abc/next'), 'i=1; root=1');
    assert.equal(jar.header('https://idp.test/interaction/abcd'), 'root=1', 'not a path prefix at a / boundary');
    assert.equal(jar.header('https://idp.test/auth/start'), 'd=1; root=1', 'default path is the directory /auth/start');
    assert.equal(jar.header('https://idp.test/auth'), 'root=1');
  });

  test('Domain attribute rules', () => {
    const jar = new CookieJar();
    assert.equal(stored(jar, 'https://a.example.com/', 'd=1; Domain=.Example.com'), true);
    assert.equal(jar.header('https://b.example.com/'), 'd=1');
    assert.equal(jar.header('https://example.com/'), 'd=1');
    assert.equal(jar.header('https://badexample.com/'), undefined);
    assert.equal(stored(jar, 'https://a.example.com/', 'x=1; Domain=other.com'), false);
    assert.equal(stored(jar, 'https://a.example.com/', 'x=1; Domain=com'), false, 'public suffix');
    assert.equal(stored(jar, 'https://127.0.0.1/', 'x=1; Domain=0.0.1'), false, 'IP hosts take no parent domain');
    assert.equal(stored(jar, 'https://a.example.com/', 'host=1'), true);
    assert.equal(jar.header('https://b.example.com/'), 'd=1', 'host-only cookie stays on its host');
  });

  test('Max-Age, Expires and deletion', () => {
    let now = Date.parse('2030-01-01T00:00:00Z');
    const jar = new CookieJar({ now: () => now });
    jar.set('https://gw.test/', 'short=1; Max-Age=10');
    jar.set('https://gw.test/', 'dated=1; Expires=Tue, 01 Jan 2030 00:01:00 GMT');
    jar.set('https://gw.test/', 'both=1; Expires=Tue, 01 Jan 2030 00:00:01 GMT; Max-Age=3600');
    jar.set('https://gw.test/', 'session=1');
    assert.equal(jar.header('https://gw.test/'), 'short=1; dated=1; both=1; session=1');
    now += 11_000;
    assert.equal(jar.header('https://gw.test/'), 'dated=1; both=1; session=1', 'Max-Age elapsed; Max-Age wins over Expires');
    now += 60_000;
    assert.equal(jar.header('https://gw.test/'), 'both=1; session=1');
    assert.equal(jar.set('https://gw.test/', 'session=; Max-Age=0').outcome, 'deleted');
    assert.equal(jar.set('https://gw.test/', 'both=; Expires=Thu, 01 Jan 1970 00:00:00 GMT').outcome, 'deleted');
    assert.equal(jar.header('https://gw.test/'), undefined);
    assert.equal(jar.rejected.length, 0, 'deletions are not rejections');
  });

  test('replacing keeps one cookie per name/domain/path; an insecure origin cannot overwrite a Secure one', () => {
    const jar = new CookieJar();
    jar.set('https://example.com/', 'a=1; Secure');
    jar.set('https://example.com/', 'a=2; Secure');
    assert.equal(jar.all().length, 1);
    assert.equal(jar.header('https://example.com/'), 'a=2');
    assert.equal(stored(jar, 'http://example.com/', 'a=3'), false);
    assert.equal(jar.header('https://example.com/'), 'a=2');
  });

  test('SameSite: None needs Secure; cross-site requests carry Lax only on top-level GET, Strict never', () => {
    const jar = new CookieJar();
    assert.equal(stored(jar, 'https://gw.test/', 'none=1; SameSite=None'), false);
    jar.set('https://gw.test/', 'none=1; SameSite=None; Secure');
    jar.set('https://gw.test/', 'lax=1; SameSite=Lax; Secure');
    jar.set('https://gw.test/', 'default=1; Secure');
    jar.set('https://gw.test/', 'strict=1; SameSite=Strict; Secure');
    assert.equal(jar.header('https://gw.test/', SAME_SITE_GET), 'none=1; lax=1; default=1; strict=1');
    assert.equal(jar.header('https://gw.test/', { sameSite: false, method: 'GET', topLevelNavigation: true }), 'none=1; lax=1; default=1');
    assert.equal(jar.header('https://gw.test/', { sameSite: false, method: 'POST', topLevelNavigation: true }), 'none=1');
  });
});

describe('HTML form parser', () => {
  const html = `<!DOCTYPE html>
<HTML><head><title>Sign in &amp; consent</title><base href="/base/"></head><body>
<!-- <form action="/commented-out"></form> -->
<script>document.write('<form action="/from-script">')</script>
<p>Allow <b>Claude&nbsp;Code</b> to use &lt;demo&gt;?</p>
<FORM id=consent METHOD=POST action='/consent?a=1&amp;b=2&copy=3'>
  <input type=hidden name=csrf value="t&quot;o&#39;k&#x27;en">
  <input type="hidden" name='uid' value=abc123>
  <input name="empty">
  <input type="checkbox" name="remember" checked>
  <input type="checkbox" name="newsletter" value="yes">
  <input type="radio" name="scope" value="read" checked><input type="radio" name="scope" value="write">
  <input name="off" value="x" disabled>
  <fieldset disabled><input name="in-disabled-fieldset" value="x"></fieldset>
  <textarea name="note">
line &amp; one</textarea>
  <select name="tenant"><option value="t1">One<option value="t2">Two</select>
  <select name="picked"><option>first</option><option selected>second</option></select>
  <input name="dup" value="first" value="second">
  <button type="submit" name="decision" value="deny">Deny</button>
  <button name="decision" value="allow" data-x='a > b'>Allow <span>access</span></button>
  <input type="submit" value="Plain submit">
  <form action="/nested-ignored"><input name="nested" value="still-in-consent"></form>
  <input name="after-inner-close" value="the inner end tag closed the outer form, as in browsers">
</FORM>
<input form="consent" name="outside" value="o">
<a href="/help?x=1&amp;y=2">Help</a>
</body></HTML>`;

  test('finds forms, decodes attributes and follows the HTML parsing rules', () => {
    const document = parseDocument(html);
    assert.equal(document.title, 'Sign in & consent');
    assert.equal(document.baseHref, '/base/');
    assert.equal(document.forms.length, 1, 'commented, scripted and nested forms are not forms');
    const form = document.forms[0]!;
    assert.equal(form.id, 'consent');
    assert.equal(form.method, 'post');
    assert.equal(form.action, '/consent?a=1&b=2&copy=3', '&copy= stays literal inside an attribute');
    assert.deepEqual(document.links, [{ href: '/help?x=1&y=2', text: 'Help' }]);
    assert.match(document.text, /Allow Claude Code to use <demo>\?/);
    assert.ok(!form.controls.some((control) => control.name === 'after-inner-close'));
    const buttons = form.controls.filter((control) => control.kind === 'button');
    assert.deepEqual(
      buttons.map((button) => [button.name, button.value, button.label]),
      [
        ['decision', 'deny', 'Deny'],
        ['decision', 'allow', 'Allow access'],
      ],
    );
  });

  test('the form data set has what a browser would send', () => {
    const form = parseDocument(html).forms[0]!;
    const allow = form.controls.find((control) => control.value === 'allow');
    assert.deepEqual(formEntries(form, allow), [
      ['csrf', `t"o'k'en`],
      ['uid', 'abc123'],
      ['empty', ''],
      ['remember', 'on'],
      ['scope', 'read'],
      ['note', 'line & one'],
      ['tenant', 't1'],
      ['picked', 'second'],
      ['dup', 'first'],
      ['decision', 'allow'],
      ['nested', 'still-in-consent'],
      ['outside', 'o'],
    ]);
  });
});

describe('browser navigation', () => {
  let server: ReturnType<typeof createHttpServer>;
  let other: ReturnType<typeof createHttpServer>;
  let base: string;
  let otherBase: string;
  const seen: { method: string; path: string; body: string; headers: IncomingMessage['headers'] }[] = [];

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://placeholder');
      seen.push({ method: req.method ?? '', path: url.pathname + url.search, body, headers: req.headers });
      const redirect = /^\/r\/(\d{3})$/.exec(url.pathname);
      if (redirect) {
        const target = url.searchParams.get('to') ?? '/echo';
        res.writeHead(Number(redirect[1]), { location: target, 'set-cookie': `hop${redirect[1]}=1; Path=/` });
        res.end();
        return;
      }
      if (url.pathname === '/form') {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end(
          `<form method=post action="${url.searchParams.get('action') ?? '/echo'}"><input type=hidden name=h value="a b&amp;c"><input name=user><button name=go value=1>Go</button></form>`,
        );
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          method: req.method,
          body,
          contentType: req.headers['content-type'] ?? null,
          origin: req.headers.origin ?? null,
          cookie: req.headers.cookie ?? null,
        }),
      );
    });
  };

  before(async () => {
    server = createHttpServer(handler);
    other = createHttpServer(handler);
    base = `http://127.0.0.1:${await listen(server)}`;
    otherBase = `http://localhost:${await listen(other)}`;
  });
  after(async () => {
    await closeServer(server);
    await closeServer(other);
  });

  async function postThrough(browser: Browser, status: number) {
    const page = await browser.goto(`${base}/r/${status}`, {
      method: 'POST',
      body: 'x=1',
      contentType: 'application/x-www-form-urlencoded',
      initiator: new URL(`${base}/start`),
    });
    return { page, echo: JSON.parse(page.body) as { method: string; body: string; contentType: string | null; origin: string | null; cookie: string | null } };
  }

  test('301/302/303 turn POST into GET without body; 307/308 keep method and body', async () => {
    const browser = new Browser();
    for (const status of [301, 302, 303]) {
      const { page, echo } = await postThrough(browser, status);
      assert.deepEqual([echo.method, echo.body, echo.contentType], ['GET', '', null], `status ${status}`);
      assert.deepEqual(
        page.hops.map((hop) => [hop.method, hop.status]),
        [
          ['POST', status],
          ['GET', 200],
        ],
      );
    }
    for (const status of [307, 308]) {
      const { echo } = await postThrough(browser, status);
      assert.deepEqual([echo.method, echo.body, echo.contentType], ['POST', 'x=1', 'application/x-www-form-urlencoded'], `status ${status}`);
      assert.equal(echo.origin, base, 'same-origin redirect keeps Origin');
    }
    const { echo } = await postThrough(browser, 303);
    assert.match(echo.cookie ?? '', /hop301=1/, 'cookies set on redirect hops are kept and sent');
    await browser.close();
  });

  test('307 across origins keeps the body; Origin turns "null" only once another site redirects (Fetch redirect-taint)', async () => {
    const browser = new Browser();
    const post = { method: 'POST', body: 'x=2', contentType: 'application/x-www-form-urlencoded', initiator: new URL(`${base}/form`) };
    let page = await browser.goto(`${base}/r/307?to=${encodeURIComponent(`${otherBase}/echo`)}`, post);
    let echo = JSON.parse(page.body) as { method: string; body: string; origin: string };
    assert.deepEqual([echo.method, echo.body, echo.origin], ['POST', 'x=2', base], 'the initiator itself redirected: Origin is still true');
    const back = `${otherBase}/r/307?to=${encodeURIComponent(`${base}/echo`)}`;
    page = await browser.goto(`${base}/r/307?to=${encodeURIComponent(back)}`, post);
    echo = JSON.parse(page.body) as { method: string; body: string; origin: string };
    assert.deepEqual([echo.method, echo.body, echo.origin], ['POST', 'x=2', 'null']);
    assert.equal(page.hops.length, 3);
    await browser.close();
  });

  test('followUntil stops at the matching URL without requesting it, and history records each hop', async () => {
    const browser = new Browser();
    const before = seen.length;
    const target = `${base}/r/302?to=${encodeURIComponent('http://127.0.0.1:1/callback?code=abc&state=xyz')}`;
    const stoppedAt = await browser.followUntil(target, 'http://127.0.0.1:1/callback');
    assert.equal(stoppedAt.searchParams.get('code'), 'abc');
    assert.equal(seen.length, before + 1, 'only the redirecting URL was requested');
    assert.deepEqual(
      browser.history.map((url) => url.pathname),
      ['/r/302'],
    );
    const app = await browser.goto(`${base}/r/302?to=${encodeURIComponent('cursor://anysphere.cursor-mcp/oauth/callback?code=1')}`);
    assert.ok(app.stopped, 'a custom scheme is handed to an app, not fetched');
    await browser.close();
  });

  test('submitForm posts the form data with the pressed button', async () => {
    const browser = new Browser();
    const page = await browser.goto(`${base}/form`);
    const result = await browser.submitForm(page, { fields: { user: 'alice' }, button: 'Go' });
    const echo = JSON.parse(result.body) as { method: string; body: string; origin: string };
    assert.equal(echo.method, 'POST');
    assert.equal(echo.body, 'h=a+b%26c&user=alice&go=1');
    assert.equal(echo.origin, base);
    await assert.rejects(browser.submitForm(page, { fields: { nope: 'x' } }), /no field "nope"/);
    await browser.close();
  });

  test('a cross-site form POST does not carry Lax cookies; the redirect GET back does', async () => {
    const browser = new Browser();
    browser.jar.set(`${base}/`, 'lax=1; SameSite=Lax');
    const page = await browser.goto(`${otherBase}/form?action=${encodeURIComponent(`${base}/r/303`)}`);
    await browser.submitForm(page);
    const post = seen.findLast((request) => request.path === '/r/303')!;
    assert.equal(post.headers.cookie?.includes('lax=1') ?? false, false, 'cross-site POST: no Lax cookie');
    assert.equal(post.headers['sec-fetch-site'], 'cross-site');
    const get = seen.at(-1)!;
    assert.equal(get.path, '/echo');
    assert.match(get.headers.cookie ?? '', /lax=1/, 'top-level GET carries Lax cookies even after a cross-site hop');
    await browser.close();
  });
});

describe('test TLS', () => {
  test('the test CA issues a certificate browsers and fetch accept for localhost, 127.0.0.1 and ::1', async () => {
    const ca = await createTestCa();
    const san = new X509Certificate(ca.certPem).subjectAltName ?? '';
    assert.match(san, /DNS:localhost/);
    assert.match(san, /IP Address:127\.0\.0\.1/);
    assert.match(san, /IP Address:0:0:0:0:0:0:0:1/);
    assert.equal(await createTestCa(), await createTestCa(), 'cached per process');
    const server = createHttpsServer({ cert: ca.certPem, key: ca.keyPem }, (_req, res) => res.end('ok'));
    const port = await listen(server);
    const trusting = createTrustingFetch(ca.caPem);
    try {
      assert.equal(await (await trusting(`https://127.0.0.1:${port}/`)).text(), 'ok');
      assert.equal(await (await trusting(`https://localhost:${port}/`)).text(), 'ok');
      await assert.rejects(fetch(`https://127.0.0.1:${port}/`), 'untrusted without the CA');
      const browser = new Browser({ ca: ca.caPem });
      assert.equal((await browser.goto(`https://localhost:${port}/`)).body, 'ok');
      await browser.close();
    } finally {
      await trusting.close();
      await closeServer(server);
    }
  });

  test('the CIMD host serves documents with their own URL as client_id, and arbitrary answers', async () => {
    const ca = await createTestCa();
    const host = await startCimdHost({ tls: ca });
    const trusting = createTrustingFetch(ca.caPem);
    try {
      const clientId = host.document('/oauth/client.json', { client_name: 'CIMD client', redirect_uris: ['http://127.0.0.1:3000/callback'] });
      assert.equal(clientId, `${host.origin}/oauth/client.json`);
      const response = await trusting(clientId);
      assert.equal(response.headers.get('cache-control'), 'max-age=300');
      assert.deepEqual(await response.json(), { client_id: clientId, client_name: 'CIMD client', redirect_uris: ['http://127.0.0.1:3000/callback'] });
      host.respond('/oauth/client.json', { status: 302, headers: { location: 'https://example.com/' } });
      assert.equal((await trusting(clientId, { redirect: 'manual' })).status, 302);
      assert.equal(host.requestsFor('/oauth/client.json').length, 2);
      const provider = new TestOAuthClientProvider({ mode: 'cimd', clientMetadataUrl: clientId });
      assert.equal(provider.clientMetadataUrl, clientId);
      assert.match(provider.redirectUrl, /^http:\/\/127\.0\.0\.1:\d+\/callback$/);
    } finally {
      await trusting.close();
      await host.close();
    }
  });
});

describe('connectWithLogin', () => {
  // The SDK's own demo authorization server (DCR, PKCE, auto-approving /authorize) in front of an SDK
  // MCP server: it checks the helper's choreography against the SDK on both sides, not the gateway.
  let server: Server;
  let mcpUrl: URL;

  before(async () => {
    const port = await freePort();
    const base = new URL(`http://127.0.0.1:${port}`);
    mcpUrl = new URL('/mcp', base);
    const oauth = new DemoInMemoryAuthProvider();
    const app = createMcpExpressApp();
    app.use(mcpAuthRouter({ provider: oauth, issuerUrl: base, resourceServerUrl: mcpUrl, scopesSupported: ['mcp:tools'] }));
    const bearer = requireBearerAuth({ verifier: oauth, resourceMetadataUrl: getOAuthProtectedResourceMetadataUrl(mcpUrl) });
    app.all('/mcp', bearer, async (req: IncomingMessage & { body?: unknown; auth?: AuthInfo }, res: ServerResponse) => {
      const mcp = new McpServer({ name: 'harness', version: '1.0.0' });
      mcp.registerTool('whoami', { description: 'The OAuth client id of the caller' }, async (extra) => ({
        content: [{ type: 'text', text: extra.authInfo?.clientId ?? 'anonymous' }],
      }));
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
      res.on('close', () => void transport.close());
      await mcp.connect(transport);
      await transport.handleRequest(req, res, req.body);
    });
    server = app.listen(port, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
  });
  after(async () => {
    await closeServer(server);
  });

  test('DCR client: 401 -> browser login -> finishAuth -> connected client with tokens', async () => {
    const provider = new TestOAuthClientProvider({ mode: 'dcr', clientName: 'harness client' });
    const browser = new Browser();
    let authorizationUrl: URL | undefined;
    const client = await connectWithLogin({
      mcpUrl,
      provider,
      login: async (url) => {
        authorizationUrl = url;
        return browser.followUntil(url, provider.redirectUrl);
      },
    });
    try {
      assert.equal(authorizationUrl?.searchParams.get('code_challenge_method'), 'S256');
      assert.equal(authorizationUrl?.searchParams.get('state'), provider.states.at(-1));
      assert.ok(provider.clientId, 'registered by DCR');
      assert.ok(provider.tokens()?.access_token);
      const result = await client.callTool({ name: 'whoami' });
      assert.deepEqual(result.content, [{ type: 'text', text: provider.clientId }]);
      // A second connection reuses the stored tokens: no new login.
      const again = await connectWithLogin({ mcpUrl, provider, login: () => assert.fail('no login expected') });
      await again.close();
      assert.equal(provider.authorizationUrls.length, 1);
    } finally {
      await client.close();
      await browser.close();
    }
  });
});
