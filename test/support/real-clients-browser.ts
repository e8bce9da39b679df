/**
 * "The browser" for real MCP client programs: they open the authorization URL with `$BROWSER <url>`
 * (directly, or through `xdg-open`, which runs `$BROWSER` when no desktop is detected). `BROWSER`
 * points at a small shell script that appends the URL to a file; this module waits for each new line
 * and drives headless Chromium through what a person does: the gateway's consent page (Allow), the
 * embedded default's local sign-in (username, password), then the client's own loopback callback,
 * which Chromium really loads, so the program receives its code exactly as it would from a person.
 *
 * @example
 * const browser = await ScriptedBrowser.start(dir, { username: 'demo', password });
 * spawn('codex', ['mcp', 'add', 'gw', '--url', url], { env: { ...env, BROWSER: browser.script } });
 * const visit = await browser.nextLogin(() => output);
 * await browser.close();
 */
import { existsSync } from 'node:fs';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Browser } from 'playwright-core';
import { findChromium, launchChromium } from './chromium.ts';

export interface LoginVisit {
  /** The authorization URL the program opened. */
  authorizationUrl: URL;
  /** Where the gateway sent the browser back: the program's redirect URI with `code` and `state`. */
  callbackUrl: URL;
  /** The text the program's callback page showed. */
  callbackText: string;
}

export class ScriptedBrowser {
  readonly script: string;
  readonly #urlsFile: string;
  readonly #chromium: Browser;
  readonly #account: { username: string; password: string };
  #seen = 0;

  private constructor(script: string, urlsFile: string, chromium: Browser, account: { username: string; password: string }) {
    this.script = script;
    this.#urlsFile = urlsFile;
    this.#chromium = chromium;
    this.#account = account;
  }

  /** The reason instead, when there is no Chromium here. */
  static async start(dir: string, account: { username: string; password: string }): Promise<ScriptedBrowser | string> {
    const found = findChromium();
    if (!found.path) return found.reason;
    const urlsFile = join(dir, 'browser-urls.txt');
    const script = join(dir, 'browser.sh');
    // Shell-quoted path; exit 0 at once, as a real browser launcher returns.
    await writeFile(script, `#!/bin/sh\nprintf '%s\\n' "$1" >> '${urlsFile.replaceAll("'", `'\\''`)}'\nexit 0\n`);
    await chmod(script, 0o755);
    return new ScriptedBrowser(script, urlsFile, await launchChromium(found.path), account);
  }

  /** How many URLs the program has opened so far. */
  async opened(): Promise<URL[]> {
    if (!existsSync(this.#urlsFile)) return [];
    return (await readFile(this.#urlsFile, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((line) => new URL(line));
  }

  /** Waits for the next URL the program opens (deadline: a missing login fails with `diagnostics()`). */
  async nextUrl(diagnostics: () => string, timeoutMs = 60_000): Promise<URL> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const urls = await this.opened();
      if (urls.length > this.#seen) return urls[this.#seen++]!;
      await sleep(100);
    }
    throw new Error(`the program never opened a browser.\n${diagnostics()}`);
  }

  /** Waits for the program to open the browser, then approves consent and signs in, in Chromium. */
  async nextLogin(diagnostics: () => string, timeoutMs = 60_000): Promise<LoginVisit> {
    const authorizationUrl = await this.nextUrl(diagnostics, timeoutMs);
    return this.login(authorizationUrl, diagnostics);
  }

  async login(authorizationUrl: URL, diagnostics: () => string = () => ''): Promise<LoginVisit> {
    const gateway = authorizationUrl.origin;
    const redirectUri = new URL(authorizationUrl.searchParams.get('redirect_uri') ?? 'about:blank');
    const context = await this.#chromium.newContext();
    const page = await context.newPage();
    let callbackUrl: URL | undefined;
    page.on('request', (request) => {
      const url = new URL(request.url());
      if (request.isNavigationRequest() && url.origin !== gateway && url.pathname === redirectUri.pathname) callbackUrl = url;
    });
    try {
      const consent = await page.goto(authorizationUrl.href);
      const consentText = await page.locator('body').innerText();
      if (!page.url().includes('/interaction/')) {
        throw new Error(`expected the consent page, got ${page.url()} (${consent?.status()}): ${consentText.slice(0, 400)}\n${diagnostics()}`);
      }
      await Promise.all([page.waitForURL((url) => !url.pathname.startsWith('/interaction/')), page.getByRole('button', { name: /^Allow/ }).click()]);
      await page.getByLabel('Username').fill(this.#account.username);
      await page.getByLabel('Password').fill(this.#account.password);
      await Promise.all([page.waitForURL((url) => url.origin !== gateway, { waitUntil: 'load' }), page.getByRole('button', { name: 'Sign in' }).click()]);
      const callbackText = await page
        .locator('body')
        .innerText()
        .catch(() => '');
      if (!callbackUrl) throw new Error(`the browser never reached ${redirectUri.href}; it is at ${page.url()}\n${diagnostics()}`);
      return { authorizationUrl, callbackUrl, callbackText };
    } finally {
      await context.close();
    }
  }

  async close(): Promise<void> {
    await this.#chromium.close();
  }
}
