/**
 * Headless Chromium for page tests: the distribution's `chromium` (Debian package) driven by
 * `playwright-core`, which ships no browser of its own. Tests call `findChromium()` first and skip with
 * its reason when there is no browser, so a machine without the package reports why instead of failing.
 *
 * Every page opened through `openPage()` records console errors, uncaught page errors and CSP violation
 * reports (Chromium logs those to the console as errors), so a test can assert a page ran clean.
 *
 * @example
 * const found = findChromium();
 * if (!found.path) return t.skip(found.reason);
 * const chromium = await launchChromium(found.path);
 * const { page, problems } = await openPage(chromium, { width: 375, height: 740 });
 * await page.goto(url);
 * assert.deepEqual(problems, []);
 * await chromium.close();
 */
import { createHash, X509Certificate } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';

/** Where Debian, Ubuntu and other distributions put the binary; `CHROMIUM_PATH` overrides them all. */
const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/lib/chromium/chromium', '/snap/bin/chromium'];
const NAMES_ON_PATH = ['chromium', 'chromium-browser', 'google-chrome-stable', 'google-chrome'];

export function findChromium(env: Record<string, string | undefined> = process.env): { path?: string; reason: string } {
  const explicit = env.CHROMIUM_PATH;
  if (explicit) {
    return isExecutable(explicit) ? { path: explicit, reason: '' } : { reason: `CHROMIUM_PATH=${explicit} is not an executable file` };
  }
  const onPath = (env.PATH ?? '')
    .split(delimiter)
    .filter(Boolean)
    .flatMap((dir) => NAMES_ON_PATH.map((name) => join(dir, name)));
  const found = [...CANDIDATES, ...onPath].find(isExecutable);
  return found
    ? { path: found, reason: '' }
    : {
        reason: `no Chromium found (tried ${CANDIDATES.join(', ')} and ${NAMES_ON_PATH.join('/')} on PATH; install the "chromium" package or set CHROMIUM_PATH)`,
      };
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Launches headless Chromium. `trustCertPem`: a test server certificate to accept by its public-key pin
 * (the https upstream IdP), so every other TLS error still fails as it would for a person.
 */
export async function launchChromium(executablePath: string, options: { trustCertPem?: string } = {}): Promise<Browser> {
  // --no-sandbox: CI runs as root, where Chromium refuses its sandbox. The pages under test are ours.
  const args = ['--no-sandbox', '--disable-dev-shm-usage'];
  if (options.trustCertPem) args.push(`--ignore-certificate-errors-spki-list=${spkiPin(options.trustCertPem)}`);
  return chromium.launch({ executablePath, headless: true, args });
}

/** base64(SHA-256(SubjectPublicKeyInfo)), the form Chromium's SPKI allow-list takes. */
function spkiPin(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

/** A console error (CSP violations and failed loads are among them) or an uncaught page error. */
export interface PageProblem {
  text: string;
  /** The page's URL when it happened. */
  url: string;
  /** The resource the message is about (for console messages), e.g. a failed load. */
  source?: string;
}

export interface OpenedPage {
  context: BrowserContext;
  page: Page;
  /** Everything that went wrong so far, in order. */
  problems: PageProblem[];
}

/** A fresh context (own cookies) and page at the given viewport, with problem recording attached. */
export async function openPage(
  browser: Browser,
  viewport: { width: number; height: number },
  options: { colorScheme?: 'light' | 'dark' } = {},
): Promise<OpenedPage> {
  const context = await browser.newContext({ viewport, colorScheme: options.colorScheme ?? 'light' });
  const page = await context.newPage();
  const problems: PageProblem[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push({ text: `console.error: ${message.text()}`, url: page.url(), source: message.location().url });
  });
  page.on('pageerror', (error) => problems.push({ text: `pageerror: ${error.message}`, url: page.url() }));
  return { context, page, problems };
}
