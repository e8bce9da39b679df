/**
 * The pages a person sees, in real headless Chromium (Debian `chromium` driven by playwright-core):
 * the whole stack (gateway, https oidc-provider IdP, demo MCP server), a registered client, and the
 * flow clicked through from /authorize to the code arriving at a loopback redirect URI, then exchanged.
 *
 * Every gateway page is checked for what a person relies on: one h1 and ordered headings, `lang`, a
 * `main` landmark, labelled inputs, text contrast >= 4.5:1 from computed styles (light and dark), no
 * horizontal scrolling at 375px, keyboard reachability with a visible focus ring, no console errors or
 * CSP violations, and the security headers. Screenshots at 1280x800 and 375x740 go to
 * test-output/screenshots/<page>-<width>.png for review.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page, Response } from 'playwright-core';
import { hashPassword } from '../../src/idp/passwords.ts';
import { findChromium, launchChromium, openPage, type PageProblem } from '../support/chromium.ts';
import { startCimdHost } from '../support/cimd-host.ts';
import { DEFAULT_PASSWORD } from '../support/oidc-idp.ts';
import { closeServer, listen } from '../support/ports.ts';
import { authorizeUrl, pkcePair, type Registered, registerPublicClient, tokenRequest } from './oauth.ts';
import { type Stack, startStack } from './stack.ts';

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 375, height: 740 };
const SCREENSHOTS = fileURLToPath(new URL('../../test-output/screenshots/', import.meta.url));
const PRODUCT_NAME = 'Acme MCP Gateway';
const LOCAL_PROVIDER = 'Acme staff accounts';
const CORP_PROVIDER = 'Example Corp SSO';
const LOCAL_PASSWORD = 'carol-local-password';
/** The denied page is another change landing beside this one; until it is in the tree its test is a todo. */
const DENIED_PAGE_PRESENT = existsSync(fileURLToPath(new URL('../../src/authorization/pages/denied-page.ts', import.meta.url)));

const LOGO_SVG = `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">
  <rect width="64" height="64" rx="14" fill="#0f766e"/>
  <path d="M16 46 L32 16 L48 46 Z" fill="#fff"/>
  <rect x="26" y="34" width="12" height="12" fill="#0f766e"/>
</svg>`;

/** A loopback redirect URI that records what arrives (the app's side of RFC 8252 §7.3). */
interface RedirectListener {
  uri: string;
  port: number;
  /** The next request's URL. */
  next(): Promise<URL>;
  close(): Promise<void>;
}

async function startRedirectListener(): Promise<RedirectListener> {
  const waiting: ((url: URL) => void)[] = [];
  const arrived: URL[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', `http://${req.headers.host}`);
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><html lang="en"><title>App</title><link rel="icon" href="data:,"><p>You can close this window.</p></html>');
    if (url.pathname !== '/callback') return;
    const waiter = waiting.shift();
    if (waiter) waiter(url);
    else arrived.push(url);
  });
  const port = await listen(server);
  return {
    uri: `http://127.0.0.1:${port}/callback`,
    port,
    next: () => {
      const ready = arrived.shift();
      if (ready) return Promise.resolve(ready);
      return new Promise<URL>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('nothing arrived at the redirect URI within 20s')), 20_000);
        waiting.push((url) => {
          clearTimeout(timer);
          resolve(url);
        });
      });
    },
    close: () => closeServer(server),
  };
}

const found = findChromium();

describe('pages a person sees, in headless Chromium', { skip: found.path ? false : found.reason }, () => {
  let stack: Stack;
  let chromium: Browser;
  let listener: RedirectListener;
  let client: Registered;
  let workDir: string;
  const contexts: BrowserContext[] = [];
  /** Every gateway document response (status < 300 or >= 400), to check the security headers of each. */
  const documents: Response[] = [];

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'mcpgw-pages-'));
    const logoFile = join(workDir, 'logo.svg');
    await writeFile(logoFile, LOGO_SVG);
    await mkdir(SCREENSHOTS, { recursive: true });
    const passwordHash = await hashPassword(LOCAL_PASSWORD);
    stack = await startStack({
      configure: (config) => {
        config.ui = { productName: PRODUCT_NAME, logoFile, accentColor: '#0f766e' };
        config.identityProviders = [
          ...(config.identityProviders ?? []),
          {
            type: 'local',
            id: 'local',
            displayName: LOCAL_PROVIDER,
            users: [{ username: 'carol', passwordHash, email: 'carol@example.com', name: 'Carol Local', groups: ['engineering'] }],
          },
        ];
        // bob (group "sales") is signed in by the IdP but refused by the gateway: the denied page.
        config.access = { groups: ['engineering'], contact: 'the platform team (#mcp-access)' };
      },
    });
    chromium = await launchChromium(found.path!, { trustCertPem: stack.ca.certPem });
    listener = await startRedirectListener();
    client = await registerPublicClient(stack, listener.uri, { client_name: 'Acme Notes Desktop' });
  });

  after(async () => {
    for (const context of contexts) await context.close().catch(() => {});
    await chromium?.close();
    await listener?.close();
    await stack?.close();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  /** A fresh browser profile (no cookies) at desktop size, recording gateway document responses. */
  async function freshPage(): Promise<{ page: Page; problems: PageProblem[] }> {
    const opened = await openPage(chromium, DESKTOP);
    contexts.push(opened.context);
    opened.page.on('response', (response) => {
      const isDocument = response.request().resourceType() === 'document';
      const redirect = response.status() >= 300 && response.status() < 400;
      if (isDocument && !redirect && response.url().startsWith(stack.issuer)) documents.push(response);
    });
    return opened;
  }

  function startAuthorization(overrides: Record<string, string> = {}): { url: URL; state: string; verifier: string } {
    const { verifier, challenge } = pkcePair();
    const state = randomBytes(8).toString('hex');
    const url = authorizeUrl(stack, {
      response_type: 'code',
      client_id: client.client_id,
      redirect_uri: listener.uri,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      state,
      scope: 'mcp:tools',
      resource: stack.mcpUrl(),
      ...overrides,
    });
    return { url, state, verifier };
  }

  /**
   * Problems on gateway pages. An error page's own 4xx status is logged by Chromium as a failed load of
   * the document itself; that is the page working as intended, so it is the one message let through.
   */
  function gatewayProblems(problems: PageProblem[]): string[] {
    const ownStatus = (problem: PageProblem) =>
      problem.text.startsWith('console.error: Failed to load resource: the server responded with a status of 4') && problem.source === problem.url;
    return problems.filter((problem) => problem.url.startsWith(stack.issuer) && !ownStatus(problem)).map((problem) => `${problem.text} at ${problem.url}`);
  }

  /** On the consent page: approve for `providerName`, by its own button or through the chooser. */
  async function approveWith(page: Page, providerName: string, name: string): Promise<void> {
    const direct = page.getByRole('button', { name: new RegExp(`with ${providerName}`) });
    if ((await direct.count()) > 0) {
      await Promise.all([page.waitForURL((url) => !url.pathname.startsWith('/interaction/') || url.origin !== stack.issuer), direct.click()]);
      return;
    }
    const consentUrl = page.url();
    await Promise.all([page.waitForURL((url) => url.href !== consentUrl), page.getByRole('button', { name: /^Allow/ }).click()]);
    assert.equal(new URL(page.url()).origin, stack.issuer, 'the chooser is a gateway page');
    await auditPage(page, `${name}: chooser`);
    await capture(page, 'chooser');
    await Promise.all([
      page.waitForURL((url) => url.origin !== stack.issuer || url.pathname.startsWith('/sign-in/')),
      page.getByRole('button', { name: new RegExp(providerName) }).click(),
    ]);
  }

  test('consent, identity provider and code exchange, clicked through with the keyboard', async () => {
    const { page, problems } = await freshPage();
    const flow = startAuthorization();
    const response = await page.goto(flow.url.href);
    assert.equal(response?.status(), 200);
    assert.match(new URL(page.url()).pathname, /^\/interaction\//, 'the consent page');

    // The client's name and where the code goes: visible, large and bold.
    await assertVisibleText(page, 'h1', 'Acme Notes Desktop');
    const target = page.locator('.identity .target');
    assert.ok(await target.isVisible(), 'redirect target visible');
    assert.match(await target.innerText(), new RegExp(`127\\.0\\.0\\.1:${listener.port}`));
    const targetStyle = await target.evaluate((element) => ({
      size: parseFloat(getComputedStyle(element).fontSize),
      weight: Number(getComputedStyle(element).fontWeight),
    }));
    assert.ok(targetStyle.size >= 18 && targetStyle.weight >= 600, `redirect target prominent: ${JSON.stringify(targetStyle)}`);
    await assertVisibleText(page, '.identity .client', 'Acme Notes Desktop');
    await assertVisibleText(page, 'header.brand', PRODUCT_NAME);
    assert.ok(await page.locator('header.brand img').evaluate((image) => (image as HTMLImageElement).naturalWidth > 0), 'the embedded logo rendered');

    await auditPage(page, 'consent');
    await capture(page, 'consent');
    await page.emulateMedia({ colorScheme: 'dark' });
    await auditPage(page, 'consent (dark)');
    await page.screenshot({ path: join(SCREENSHOTS, `consent-dark-${DESKTOP.width}.png`), fullPage: true });
    await page.emulateMedia({ colorScheme: 'light' });

    // Keyboard: the first Tab stop is the approve button, its focus ring is visible, Enter submits.
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => {
      const element = document.activeElement as HTMLElement | null;
      const style = element ? getComputedStyle(element) : undefined;
      return { tag: element?.tagName, value: element?.getAttribute('value'), outline: style?.outlineStyle, width: parseFloat(style?.outlineWidth ?? '0') };
    });
    assert.equal(focused.tag, 'BUTTON');
    assert.match(focused.value ?? '', /^approve/, 'Tab reaches Approve first');
    assert.ok(focused.outline !== 'none' && focused.width >= 2, `visible focus ring: ${JSON.stringify(focused)}`);
    const consentUrl = page.url();
    await Promise.all([page.waitForURL((url) => url.href !== consentUrl), page.keyboard.press('Enter')]);

    if (new URL(page.url()).origin === stack.issuer) {
      // The sign-in chooser: keyboard again, to the corporate IdP.
      await auditPage(page, 'chooser');
      await capture(page, 'chooser');
      await Promise.all([page.waitForURL((url) => url.origin !== stack.issuer), page.getByRole('button', { name: new RegExp(CORP_PROVIDER) }).click()]);
    }

    // The upstream IdP (test stand-in, not ours): sign in as alice.
    assert.equal(new URL(page.url()).origin, new URL(stack.idp.issuer).origin, `at the IdP, got ${page.url()}`);
    await page.getByLabel('Username').fill('alice');
    await page.getByLabel('Password').fill(DEFAULT_PASSWORD);
    const arrived = listener.next();
    await page.getByRole('button', { name: 'Sign in' }).click();
    const returned = await arrived;
    assert.equal(returned.searchParams.get('state'), flow.state);
    assert.equal(returned.searchParams.get('iss'), stack.issuer, 'RFC 9207 issuer');
    const code = returned.searchParams.get('code');
    assert.ok(code, `a code at the redirect URI: ${returned.href}`);

    const tokens = await tokenRequest(stack, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: listener.uri,
      code_verifier: flow.verifier,
      client_id: client.client_id,
      resource: stack.mcpUrl(),
    });
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    assert.equal(typeof tokens.body.access_token, 'string');
    assert.deepEqual(gatewayProblems(problems), []);
  });

  test('local sign-in: a wrong password is announced, the right one completes the flow', async () => {
    const { page, problems } = await freshPage();
    const flow = startAuthorization();
    await page.goto(flow.url.href);
    await approveWith(page, LOCAL_PROVIDER, 'local');
    assert.match(new URL(page.url()).pathname, /^\/sign-in\/local$/, `the local sign-in page, got ${page.url()}`);
    await assertVisibleText(page, 'h1', 'Sign in');
    const username = page.getByLabel('Username');
    const password = page.getByLabel('Password');
    assert.equal(await username.getAttribute('autocomplete'), 'username');
    assert.equal(await password.getAttribute('autocomplete'), 'current-password');
    assert.ok(await username.evaluate((element) => element === document.activeElement), 'the username field has focus');
    await auditPage(page, 'local sign-in');
    await capture(page, 'local-sign-in');

    await username.fill('carol');
    await password.fill('not the password');
    await Promise.all([page.waitForLoadState('load'), password.press('Enter')]);
    const alert = page.getByRole('alert');
    assert.ok(await alert.isVisible(), 'the error is shown');
    assert.match(await alert.innerText(), /username or password is incorrect/);
    const alertId = await alert.getAttribute('id');
    assert.ok(alertId, 'the alert has an id');
    assert.equal(await page.getByLabel('Password').getAttribute('aria-describedby'), alertId, 'the field points at the error');
    assert.equal(await page.getByLabel('Password').getAttribute('aria-invalid'), 'true');
    assert.equal(await page.getByLabel('Username').inputValue(), 'carol', 'the username is kept');
    await auditPage(page, 'local sign-in error');
    await capture(page, 'local-sign-in-error');

    await page.getByLabel('Password').fill(LOCAL_PASSWORD);
    const arrived = listener.next();
    await page.getByRole('button', { name: 'Sign in' }).click();
    const returned = await arrived;
    const code = returned.searchParams.get('code');
    assert.ok(code, `a code at the redirect URI: ${returned.href}`);
    const tokens = await tokenRequest(stack, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: listener.uri,
      code_verifier: flow.verifier,
      client_id: client.client_id,
      resource: stack.mcpUrl(),
    });
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    assert.deepEqual(gatewayProblems(problems), []);
  });

  test('denying on the consent page sends access_denied to the client and no code', async () => {
    const { page, problems } = await freshPage();
    const flow = startAuthorization();
    await page.goto(flow.url.href);
    const arrived = listener.next();
    await page.getByRole('button', { name: 'Deny' }).click();
    const returned = await arrived;
    assert.equal(returned.searchParams.get('error'), 'access_denied');
    assert.equal(returned.searchParams.get('state'), flow.state);
    assert.equal(returned.searchParams.get('code'), null);
    assert.deepEqual(gatewayProblems(problems), []);
  });

  test('a client with a web redirect shows its host', async () => {
    const webClient = await registerPublicClient(stack, 'https://notes.example.com/oauth/callback', { client_name: 'Acme Notes Web' });
    const { page, problems } = await freshPage();
    await page.goto(startAuthorization({ client_id: webClient.client_id, redirect_uri: 'https://notes.example.com/oauth/callback' }).url.href);
    await assertVisibleText(page, '.identity .target', 'notes.example.com');
    await assertVisibleText(page, 'h1', 'Acme Notes Web');
    await auditPage(page, 'consent (web client)');
    await capture(page, 'consent-web-client');
    assert.deepEqual(gatewayProblems(problems), []);
  });

  test('a CIMD client that only returns to this computer gets a warning styled as one', async () => {
    const host = await startCimdHost({ tls: stack.ca });
    try {
      const documentUrl = host.document('/oauth/client.json', {
        client_name: 'Acme CLI',
        redirect_uris: ['http://127.0.0.1/callback'],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      });
      const { page, problems } = await freshPage();
      const response = await page.goto(startAuthorization({ client_id: documentUrl }).url.href);
      assert.equal(response?.status(), 200, await page.locator('body').innerText());
      await assertVisibleText(page, '.identity .note', new URL(documentUrl).host);
      const warning = page.locator('.notice-warning');
      assert.ok(await warning.isVisible(), 'the warning is shown');
      assert.match(await warning.innerText(), /only returns to programs on your own computer/);
      const looks = await warning.evaluate((element) => {
        const style = getComputedStyle(element);
        const card = getComputedStyle(document.querySelector('main')!);
        return { background: style.backgroundColor, card: card.backgroundColor, border: parseFloat(style.borderLeftWidth), borderColor: style.borderLeftColor };
      });
      assert.notEqual(looks.background, looks.card, `the warning stands out from the card: ${JSON.stringify(looks)}`);
      assert.ok(looks.border >= 4, `a heavy warning edge: ${JSON.stringify(looks)}`);
      await auditPage(page, 'consent (CIMD, loopback only)');
      await capture(page, 'consent-cimd-loopback');
      assert.deepEqual(gatewayProblems(problems), []);
    } finally {
      await host.close();
    }
  });

  test('the denied page: signed in at the IdP but refused by the access rules', {
    todo: DENIED_PAGE_PRESENT ? false : 'src/authorization/pages/denied-page.ts is not in the tree yet',
  }, async () => {
    const { page, problems } = await freshPage();
    await page.goto(startAuthorization().url.href);
    const consentUrl = page.url();
    await Promise.all([
      page.waitForURL((url) => url.href !== consentUrl),
      page
        .getByRole('button', { name: /^Allow/ })
        .first()
        .click(),
    ]);
    if (new URL(page.url()).origin === stack.issuer) {
      await Promise.all([page.waitForURL((url) => url.origin !== stack.issuer), page.getByRole('button', { name: new RegExp(CORP_PROVIDER) }).click()]);
    }
    await page.getByLabel('Username').fill('bob');
    await page.getByLabel('Password').fill(DEFAULT_PASSWORD);
    await Promise.all([
      page.waitForURL((url) => url.origin === stack.issuer || url.href.startsWith(listener.uri)),
      page.getByRole('button', { name: 'Sign in' }).click(),
    ]);
    if (page.url().startsWith(listener.uri)) {
      await listener.next(); // not left queued for the next test
      assert.fail(`a refused account reached the client instead of the denied page: ${page.url()}`);
    }
    await assertVisibleText(page, 'h1', 'may not use');
    assert.match(await page.locator('main').innerText(), /bob@example\.com/);
    assert.match(await page.locator('main').innerText(), /platform team/);
    await auditPage(page, 'denied');
    await capture(page, 'denied');
    const arrived = listener.next();
    await page.getByRole('button', { name: /^Return to/ }).click();
    const returned = await arrived;
    assert.equal(returned.searchParams.get('error'), 'access_denied');
    assert.deepEqual(gatewayProblems(problems), []);
  });

  test('error pages: an expired interaction, an expired local sign-in link, an unknown client', async () => {
    const { page, problems } = await freshPage();
    let response = await page.goto(`${stack.issuer}/interaction/no-such-interaction`);
    assert.equal(response?.status(), 400);
    await assertVisibleText(page, 'h1', 'This sign-in has expired');
    await auditPage(page, 'error (expired interaction)');
    await capture(page, 'error-expired');

    response = await page.goto(`${stack.issuer}/sign-in/local?state=expired-state`);
    assert.equal(response?.status(), 400);
    await assertVisibleText(page, 'h1', 'This sign-in has expired');
    await auditPage(page, 'error (expired local sign-in)');

    response = await page.goto(startAuthorization({ client_id: 'no-such-client' }).url.href);
    assert.equal(response?.status(), 400);
    assert.match(await page.locator('main').innerText(), /invalid_client/);
    await auditPage(page, 'error (unknown client)');
    await capture(page, 'error-provider');
    assert.deepEqual(gatewayProblems(problems), []);
  });

  test('every gateway page carries the security headers', () => {
    assert.ok(documents.length >= 5, `pages seen: ${documents.length}`);
    for (const response of documents) {
      const headers = response.headers();
      const where = `${response.status()} ${response.url()}`;
      const csp = headers['content-security-policy'] ?? '';
      assert.match(csp, /default-src 'none'/, where);
      assert.match(csp, /frame-ancestors 'none'/, where);
      assert.doesNotMatch(csp, /unsafe-inline|script-src/, where);
      assert.equal(headers['x-frame-options'], 'DENY', where);
      assert.equal(headers['x-content-type-options'], 'nosniff', where);
      assert.equal(headers['referrer-policy'], 'no-referrer', where);
      assert.match(headers['cache-control'] ?? '', /no-store/, where);
    }
  });
});

async function assertVisibleText(page: Page, selector: string, text: string): Promise<void> {
  const element = page.locator(selector).first();
  assert.ok(await element.isVisible(), `${selector} is visible`);
  const shown = await element.innerText();
  assert.ok(shown.includes(text), `${selector} shows "${text}": "${shown}"`);
}

/** Screenshots at desktop and phone width; at phone width the page must not scroll sideways. */
async function capture(page: Page, name: string): Promise<void> {
  for (const size of [DESKTOP, PHONE]) {
    await page.setViewportSize(size);
    await page.screenshot({ path: join(SCREENSHOTS, `${name}-${size.width}.png`), fullPage: true });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `${name} at ${size.width}px scrolls sideways by ${overflow}px`);
  }
  await page.setViewportSize(DESKTOP);
}

/** Structural and contrast checks from the rendered page (computed styles, not the source). */
async function auditPage(page: Page, name: string): Promise<void> {
  const report = await page.evaluate(() => {
    const parse = (value: string): [number, number, number, number] => {
      const parts = (/rgba?\(([^)]+)\)/.exec(value)?.[1] ?? '0 0 0 0')
        .split(/[\s,/]+/)
        .filter(Boolean)
        .map(Number);
      return [parts[0] ?? 0, parts[1] ?? 0, parts[2] ?? 0, parts[3] ?? 1];
    };
    const luminance = ([r, g, b]: number[]) => {
      const channel = (c: number) => {
        const v = c / 255;
        return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * channel(r!) + 0.7152 * channel(g!) + 0.0722 * channel(b!);
    };
    const background = (element: Element | null): number[] => {
      for (let node = element; node; node = node.parentElement) {
        const color = parse(getComputedStyle(node).backgroundColor);
        if (color[3] > 0) return color;
      }
      return [255, 255, 255, 1];
    };
    const lowContrast: string[] = [];
    let minimum = 21;
    for (const element of Array.from(document.body.querySelectorAll('*'))) {
      const ownText = Array.from(element.childNodes).some((node) => node.nodeType === Node.TEXT_NODE && (node.textContent ?? '').trim() !== '');
      const box = element.getBoundingClientRect();
      if (!ownText || box.width === 0 || box.height === 0) continue;
      const fg = luminance(parse(getComputedStyle(element).color));
      const bg = luminance(background(element));
      const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
      minimum = Math.min(minimum, ratio);
      if (ratio < 4.5)
        lowContrast.push(`${element.tagName.toLowerCase()}.${element.className} "${(element.textContent ?? '').trim().slice(0, 40)}" ${ratio.toFixed(2)}`);
    }
    const unlabelled = Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))
      .filter((control) => !(control as HTMLInputElement).labels?.length && !control.getAttribute('aria-label') && !control.getAttribute('aria-labelledby'))
      .map((control) => control.outerHTML);
    const headings = Array.from(document.querySelectorAll('h1, h2, h3, h4, h5, h6')).map((heading) => Number(heading.tagName[1]));
    const skipped = headings.some((level, index) => index > 0 && level > headings[index - 1]! + 1);
    const buttonsWithoutName = Array.from(document.querySelectorAll('button')).filter(
      (button) => (button.textContent ?? '').trim() === '' && !button.getAttribute('aria-label'),
    ).length;
    return {
      lang: document.documentElement.lang,
      title: document.title,
      h1: document.querySelectorAll('h1').length,
      firstHeading: headings[0],
      skipped,
      mains: document.querySelectorAll('main').length,
      unlabelled,
      buttonsWithoutName,
      lowContrast,
      minimum,
    };
  });
  assert.equal(report.lang, 'en', `${name}: lang`);
  assert.ok(report.title.length > 0, `${name}: title`);
  assert.equal(report.h1, 1, `${name}: exactly one h1`);
  assert.equal(report.firstHeading, 1, `${name}: the first heading is the h1`);
  assert.equal(report.skipped, false, `${name}: heading levels in order`);
  assert.equal(report.mains, 1, `${name}: one main landmark`);
  assert.deepEqual(report.unlabelled, [], `${name}: every input has a label`);
  assert.equal(report.buttonsWithoutName, 0, `${name}: every button has a name`);
  assert.deepEqual(report.lowContrast, [], `${name}: text contrast >= 4.5:1 (lowest ${report.minimum.toFixed(2)})`);
}
