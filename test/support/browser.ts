/**
 * A scripted browser for login flows: top-level navigations only, no JavaScript. It keeps cookies like
 * Chromium (see cookies.ts), follows redirects one hop at a time and records each hop, sends the
 * navigation headers a gateway may check (Origin on POST, Referer, Sec-Fetch-*), trusts the test CA,
 * and submits HTML forms the way a user clicking a button would.
 *
 * @example
 * const browser = new Browser({ ca: (await createTestCa()).caPem });
 * let page = await browser.goto(authorizationUrl);                  // consent page
 * page = await browser.submitForm(page, { button: 'Allow' });        // upstream IdP login page
 * page = await browser.submitForm(page, {
 *   fields: { username: 'alice', password: 'pw' },
 *   stopAt: 'http://127.0.0.1:5555/callback',                       // the MCP client's redirect_uri
 * });
 * assert.ok(page.stopped);
 * const code = page.url.searchParams.get('code');
 */
import tls from 'node:tls';
import type { RequestInit as UndiciRequestInit } from 'undici';
import { Agent, fetch as undiciFetch } from 'undici';
import { CookieJar, siteOf } from './cookies.ts';
import type { FormControl, HtmlForm, HtmlLink, ParsedDocument } from './html.ts';
import { formEntries, isSubmitButton, parseDocument } from './html.ts';

/**
 * Where a navigation stops without fetching: a URL string matches on origin + path (query ignored),
 * a RegExp is tested against the full href, a function decides.
 */
export type UrlMatcher = string | URL | RegExp | ((url: URL) => boolean);

export interface Hop {
  method: string;
  url: URL;
  status: number;
  /** Resolved `Location` of a redirect. */
  location?: URL;
  /** Set-Cookie headers the hop received (as sent, for assertions). */
  setCookies: string[];
}

export interface BrowserOptions {
  /** PEM CA certificate(s) trusted besides Node's roots (the test CA). */
  ca?: string | string[];
  userAgent?: string;
  /** Redirects followed per navigation before giving up (Chromium: 20). */
  maxRedirects?: number;
  jar?: CookieJar;
}

export interface NavigateOptions {
  stopAt?: UrlMatcher;
  /** The page whose link or form started this navigation; absent means typed into the address bar. */
  initiator?: URL;
  method?: string;
  body?: string;
  contentType?: string;
  /** Extra request headers for the first hop only (tests of odd clients). */
  headers?: Record<string, string>;
}

export interface SubmitOptions {
  /** Which form: index, or a substring of its action, or its id/name. Default: the first form. */
  form?: number | string;
  /** Values by control name: text for inputs/textareas, option value for selects, boolean or value for checkboxes, value for radios. */
  fields?: Record<string, string | boolean>;
  /** Allow `fields` names the form does not have (appended, as a tampering client would). */
  allowExtraFields?: boolean;
  /** The submit button: its name, value or label. Default: the first submit button (what Enter does). */
  button?: string;
  stopAt?: UrlMatcher;
}

export class Page {
  readonly url: URL;
  readonly status: number;
  readonly headers: Headers;
  readonly body: string;
  /** Every request of the navigation that produced this page, the last one included. */
  readonly hops: Hop[];
  /** The navigation reached a URL matching `stopAt` (or a non-http scheme) and did not fetch it. */
  readonly stopped: boolean;
  #document: ParsedDocument | undefined;

  constructor(init: { url: URL; status: number; headers: Headers; body: string; hops: Hop[]; stopped: boolean }) {
    this.url = init.url;
    this.status = init.status;
    this.headers = init.headers;
    this.body = init.body;
    this.hops = init.hops;
    this.stopped = init.stopped;
  }

  get document(): ParsedDocument {
    this.#document ??= parseDocument(this.body);
    return this.#document;
  }

  get forms(): HtmlForm[] {
    return this.document.forms;
  }

  get links(): HtmlLink[] {
    return this.document.links;
  }

  get title(): string {
    return this.document.title;
  }

  /** Visible text, whitespace collapsed: for "the consent page names the client" assertions. */
  get text(): string {
    return this.document.text;
  }

  /** The form chosen by index, action substring, id or name (see `SubmitOptions.form`). */
  form(selector: number | string = 0): HtmlForm {
    const forms = this.forms;
    const found =
      typeof selector === 'number'
        ? forms[selector]
        : (forms.find((form) => form.id === selector || form.name === selector) ?? forms.find((form) => form.action.includes(selector)));
    if (!found) {
      const summary = forms.map((form) => `#${form.index} ${form.method.toUpperCase()} "${form.action}"`).join(', ') || 'no forms';
      throw new Error(
        `Page ${this.url.href} (status ${this.status}) has no form ${JSON.stringify(selector)}; it has ${summary}. Text: ${this.text.slice(0, 300)}`,
      );
    }
    return found;
  }

  /** Resolves a URL written in the page (honours `<base href>`). */
  resolve(reference: string): URL {
    const base = this.document.baseHref ? new URL(this.document.baseHref, this.url) : this.url;
    return new URL(reference, base);
  }

  /** Short description for assertion messages. */
  toString(): string {
    return `${this.status} ${this.url.href}${this.stopped ? ' (stopped)' : ''} — ${this.title || this.text.slice(0, 120)}`;
  }
}

export class Browser {
  readonly jar: CookieJar;
  /** Every URL requested, across all navigations, in order (stopped-at URLs are not requested). */
  readonly history: URL[] = [];
  readonly #agent: Agent;
  readonly #userAgent: string;
  readonly #maxRedirects: number;

  constructor(options: BrowserOptions = {}) {
    this.jar = options.jar ?? new CookieJar();
    const extra = options.ca === undefined ? [] : Array.isArray(options.ca) ? options.ca : [options.ca];
    this.#agent = new Agent({ connect: extra.length > 0 ? { ca: [...tls.rootCertificates, ...extra] } : {} });
    this.#userAgent =
      options.userAgent ?? 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Safari/537.36 mcp-oauth-gateway-tests';
    this.#maxRedirects = options.maxRedirects ?? 20;
  }

  /** Navigates as if the URL were typed (or `options.initiator`'s page linked to it). */
  goto(url: string | URL, options: NavigateOptions = {}): Promise<Page> {
    return this.#navigate(new URL(url), options);
  }

  /**
   * Follows redirects from `url` and returns the first URL matching `predicate` without fetching it:
   * for "which redirect_uri did the flow end at". Throws if a page is reached instead.
   */
  async followUntil(url: string | URL, predicate: UrlMatcher, options: Omit<NavigateOptions, 'stopAt'> = {}): Promise<URL> {
    const page = await this.goto(url, { ...options, stopAt: predicate });
    if (!page.stopped) throw new Error(`followUntil: navigation ended at a page instead: ${page.toString()}`);
    return page.url;
  }

  /** Follows a link of `page` chosen by exact text, or by a substring of its href. */
  async click(page: Page, linkTextOrHref: string, options: { stopAt?: UrlMatcher } = {}): Promise<Page> {
    const link = page.links.find((candidate) => candidate.text === linkTextOrHref) ?? page.links.find((candidate) => candidate.href.includes(linkTextOrHref));
    if (!link) throw new Error(`click: no link "${linkTextOrHref}" on ${page.toString()}`);
    return this.#navigate(page.resolve(link.href), { initiator: page.url, stopAt: options.stopAt });
  }

  /** Fills and submits a form of `page`, like a user pressing one of its buttons. */
  async submitForm(page: Page, options: SubmitOptions = {}): Promise<Page> {
    const form = page.form(options.form ?? 0);
    const controls = form.controls.map((control) => ({ ...control, options: control.options.map((option) => ({ ...option })) }));
    const extra = applyFields(controls, options.fields ?? {}, options.allowExtraFields ?? false, page);
    const submitter = chooseSubmitter(controls, options.button, page);
    const entries = [...formEntries({ ...form, controls }, submitter), ...extra];

    const actionAttribute = submitter?.attributes.get('formaction') ?? form.action;
    const action = actionAttribute === '' ? new URL(page.url) : page.resolve(actionAttribute);
    const methodAttribute = (submitter?.attributes.get('formmethod') ?? form.method).toLowerCase();
    const enctype = (submitter?.attributes.get('formenctype') ?? form.enctype).toLowerCase();
    if (methodAttribute === 'dialog') throw new Error('submitForm: method=dialog does not navigate');
    const data = new URLSearchParams(entries);
    if (methodAttribute !== 'post') {
      // GET replaces the action's query with the form data (HTML "mutate action URL").
      action.search = data.toString();
      return this.#navigate(action, { initiator: page.url, stopAt: options.stopAt });
    }
    if (enctype === 'multipart/form-data') {
      throw new Error('submitForm: multipart/form-data is not supported by the test browser');
    }
    if (enctype === 'text/plain') {
      const body = entries.map(([name, value]) => `${name}=${value}\r\n`).join('');
      return this.#navigate(action, { initiator: page.url, stopAt: options.stopAt, method: 'POST', body, contentType: 'text/plain' });
    }
    return this.#navigate(action, {
      initiator: page.url,
      stopAt: options.stopAt,
      method: 'POST',
      body: data.toString(),
      contentType: 'application/x-www-form-urlencoded',
    });
  }

  /** Closes the connection pool. */
  close(): Promise<void> {
    return this.#agent.close();
  }

  async #navigate(start: URL, options: NavigateOptions): Promise<Page> {
    const hops: Hop[] = [];
    let url = start;
    let method = (options.method ?? 'GET').toUpperCase();
    let body = options.body;
    let contentType = options.contentType;
    const initiator = options.initiator;
    // Sec-Fetch-Site and SameSite look at the whole redirect chain: one cross-site hop taints the rest.
    let chainSameSite = true;
    let chainSameOrigin = true;

    for (let redirects = 0; ; redirects++) {
      if (options.stopAt && matches(options.stopAt, url)) return stoppedPage(url, hops);
      // A custom scheme (cursor://, vscode://) would be handed to an app: the browser stops there.
      if (url.protocol !== 'http:' && url.protocol !== 'https:') return stoppedPage(url, hops);
      if (redirects > this.#maxRedirects) throw new Error(`Too many redirects (${redirects}): ${hops.map((hop) => hop.url.href).join(' -> ')}`);

      if (initiator) {
        chainSameSite &&= siteOf(initiator) === siteOf(url);
        chainSameOrigin &&= initiator.origin === url.origin;
      }
      const headers: Record<string, string> = {
        'user-agent': this.#userAgent,
        accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
        'accept-language': 'en',
        'sec-fetch-mode': 'navigate',
        'sec-fetch-dest': 'document',
        'sec-fetch-user': '?1',
        'sec-fetch-site': !initiator ? 'none' : chainSameOrigin ? 'same-origin' : chainSameSite ? 'same-site' : 'cross-site',
        'upgrade-insecure-requests': '1',
      };
      const cookie = this.jar.header(url, { sameSite: chainSameSite, method, topLevelNavigation: true });
      if (cookie) headers.cookie = cookie;
      if (initiator) {
        const referrer = referrerFor(initiator, url);
        if (referrer) headers.referer = referrer;
      }
      // Chromium sends Origin on non-GET navigations; a redirect through another origin makes it "null".
      if (method !== 'GET' && method !== 'HEAD') {
        const urls = [...hops.map((previous) => previous.url), url];
        headers.origin = !initiator || redirectTaint(initiator, urls) !== 'same-origin' ? 'null' : initiator.origin;
      }
      if (body !== undefined && contentType) headers['content-type'] = contentType;
      if (hops.length === 0 && options.headers) Object.assign(headers, options.headers);

      this.history.push(url);
      const response = await undiciFetch(url, {
        method,
        headers,
        body,
        redirect: 'manual',
        dispatcher: this.#agent,
      } as UndiciRequestInit);
      const setCookies = response.headers.getSetCookie();
      this.jar.setAll(url, setCookies);
      const hop: Hop = { method, url, status: response.status, setCookies };
      hops.push(hop);

      const location = response.headers.get('location');
      if ([301, 302, 303, 307, 308].includes(response.status) && location !== null) {
        await response.body?.cancel();
        const next = new URL(location, url);
        // A Location without a fragment keeps the current one (RFC 9110 §10.2.2).
        if (!next.hash && url.hash) next.hash = url.hash;
        hop.location = next;
        // RFC 9110 §15.4: 303 turns anything but HEAD into GET; browsers also turn POST into GET on
        // 301/302 (historical, now specified by Fetch); 307/308 keep method and body.
        const toGet = (response.status === 303 && method !== 'HEAD') || ((response.status === 301 || response.status === 302) && method === 'POST');
        if (toGet) {
          method = 'GET';
          body = undefined;
          contentType = undefined;
        }
        url = next;
        continue;
      }
      const text = await response.text();
      return new Page({ url, status: response.status, headers: new Headers([...response.headers]), body: text, hops, stopped: false });
    }
  }
}

function stoppedPage(url: URL, hops: Hop[]): Page {
  return new Page({ url, status: 0, headers: new Headers(), body: '', hops, stopped: true });
}

/** Fetch §3.1.6 "redirect-taint of a request": how far the URL list strayed from the request's origin. */
function redirectTaint(origin: URL, urls: URL[]): 'same-origin' | 'same-site' | 'cross-site' {
  let taint: 'same-origin' | 'same-site' | 'cross-site' = 'same-origin';
  let last: URL | undefined;
  for (const url of urls) {
    if (last) {
      if (siteOf(url) !== siteOf(last) && siteOf(origin) !== siteOf(last)) taint = 'cross-site';
      else if (taint !== 'cross-site' && url.origin !== last.origin && origin.origin !== last.origin) taint = 'same-site';
    }
    last = url;
  }
  return taint;
}

/** `strict-origin-when-cross-origin`, the default referrer policy. */
function referrerFor(from: URL, to: URL): string | undefined {
  if (from.protocol === 'https:' && to.protocol === 'http:') return undefined;
  if (from.origin === to.origin) {
    const stripped = new URL(from);
    stripped.hash = '';
    stripped.username = '';
    stripped.password = '';
    return stripped.href;
  }
  return `${from.origin}/`;
}

export function matches(matcher: UrlMatcher, url: URL): boolean {
  if (typeof matcher === 'function') return matcher(url);
  if (matcher instanceof RegExp) return matcher.test(url.href);
  const target = new URL(matcher);
  return target.origin === url.origin && target.pathname === url.pathname;
}

type MutableControl = FormControl;

function applyFields(controls: MutableControl[], fields: Record<string, string | boolean>, allowExtra: boolean, page: Page): [string, string][] {
  const extra: [string, string][] = [];
  for (const [name, value] of Object.entries(fields)) {
    const named = controls.filter((control) => control.name === name && !isSubmitButton(control));
    if (named.length === 0) {
      if (!allowExtra)
        throw new Error(
          `submitForm: the form has no field "${name}" (fields: ${controls
            .map((c) => c.name)
            .filter(Boolean)
            .join(', ')}) on ${page.url.href}`,
        );
      extra.push([name, String(value)]);
      continue;
    }
    const first = named[0]!;
    if (first.kind === 'input' && first.type === 'checkbox') {
      for (const control of named) {
        control.checked = typeof value === 'boolean' ? value : control.value === value;
      }
    } else if (first.kind === 'input' && first.type === 'radio') {
      const chosen = named.find((control) => control.value === String(value));
      if (!chosen) throw new Error(`submitForm: radio "${name}" has no value "${String(value)}"`);
      for (const control of named) control.checked = control === chosen;
    } else if (first.kind === 'select') {
      const wanted = String(value);
      if (!first.options.some((option) => option.value === wanted)) throw new Error(`submitForm: select "${name}" has no option "${wanted}"`);
      for (const option of first.options) option.selected = option.value === wanted;
    } else {
      // Text-like inputs (hidden ones too: tests may tamper, a user could with dev tools).
      first.value = String(value);
    }
  }
  return extra;
}

function chooseSubmitter(controls: MutableControl[], button: string | undefined, page: Page): MutableControl | undefined {
  const buttons = controls.filter((control) => isSubmitButton(control) && !control.disabled);
  if (button === undefined) return buttons[0];
  const found =
    buttons.find((control) => control.name === button) ??
    buttons.find((control) => control.value === button) ??
    buttons.find((control) => control.label === button);
  if (!found) {
    const names = buttons.map((control) => `${control.name || '(no name)'}=${control.value} "${control.label}"`).join(', ');
    throw new Error(`submitForm: no enabled submit button "${button}" (buttons: ${names || 'none'}) on ${page.url.href}`);
  }
  return found;
}
