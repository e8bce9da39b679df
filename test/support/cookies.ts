/**
 * A cookie jar that behaves like a current Chromium for the rules a login flow depends on
 * (RFC 6265bis-19 §5.6 storage, §5.8.3 retrieval), so a gateway that sets a cookie wrongly fails in
 * tests the way it would fail in a browser:
 *
 * - Domain: must domain-match the host; an IP host only takes its own exact address; no Domain makes a
 *   host-only cookie. Without the public suffix list, a single-label Domain other than the host itself
 *   (`Domain=com`) is refused as if it were a public suffix.
 * - Path: default path is the request path's directory; sent only to paths that path-match.
 * - Secure: set and sent only over https, or on loopback hosts (Chromium treats http://localhost and
 *   127.0.0.1 as secure contexts). A non-secure origin cannot overwrite a Secure cookie.
 * - `__Secure-` needs Secure; `__Host-` needs Secure, `Path=/` and no Domain (prefixes matched
 *   case-insensitively, as in 6265bis).
 * - Max-Age wins over Expires; zero or negative Max-Age, or a past Expires, deletes.
 * - SameSite: Strict/Lax/None; absent means Lax (Chromium's Lax-by-default, without its two-minute
 *   "Lax+POST" allowance); None needs Secure. Cross-site requests carry None cookies, Lax cookies only on
 *   top-level GET navigations, Strict never. Sites are scheme + registrable domain, approximated as the
 *   last two labels (IP addresses and `localhost` are their own site). Ports never separate cookies.
 * - HttpOnly is recorded (this client is "HTTP", so it sends them).
 */

export type SameSite = 'strict' | 'lax' | 'none';

export interface Cookie {
  name: string;
  value: string;
  /** Canonical host (host-only) or the Domain attribute without its leading dot. */
  domain: string;
  hostOnly: boolean;
  path: string;
  secure: boolean;
  httpOnly: boolean;
  /** `undefined` when the attribute was absent (then treated as Lax). */
  sameSite: SameSite | undefined;
  /** Epoch ms; `undefined` for a session cookie. */
  expiresAt: number | undefined;
  createdAt: number;
}

/** How the request that would carry cookies relates to the site that started it. */
export interface CookieRequestContext {
  /** Whether the request is same-site with its initiator (including every hop of a redirect chain). */
  sameSite: boolean;
  method: string;
  /** A top-level navigation (the Browser's requests all are). */
  topLevelNavigation: boolean;
}

/** `deleted`: the header expired a cookie (Max-Age=0 or a past Expires), which is how cookies are removed. */
export type SetCookieResult = { outcome: 'stored'; cookie: Cookie } | { outcome: 'deleted' } | { outcome: 'refused'; reason: string };

export class CookieJar {
  #cookies: Cookie[] = [];
  /** Every refused Set-Cookie with its reason, newest last: for assertions and for debugging a flow. */
  readonly rejected: { url: string; header: string; reason: string }[] = [];
  readonly #now: () => number;

  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
  }

  /** Applies one `Set-Cookie` header value received from `url`. */
  set(url: URL | string, header: string): SetCookieResult {
    const requestUrl = new URL(url);
    const result = this.#store(requestUrl, header);
    if (result.outcome === 'refused') this.rejected.push({ url: requestUrl.href, header, reason: result.reason });
    return result;
  }

  /** Applies every `Set-Cookie` of a response. */
  setAll(url: URL | string, headers: readonly string[]): SetCookieResult[] {
    return headers.map((header) => this.set(url, header));
  }

  /** Cookies that a request to `url` carries, in header order (longer paths first, then older first). */
  cookiesFor(url: URL | string, context: CookieRequestContext = { sameSite: true, method: 'GET', topLevelNavigation: true }): Cookie[] {
    const target = new URL(url);
    const host = canonicalHost(target);
    const secureChannel = isSecureOrigin(target);
    this.#evictExpired();
    return this.#cookies
      .filter((cookie) => (cookie.hostOnly ? cookie.domain === host : domainMatches(host, cookie.domain)))
      .filter((cookie) => pathMatches(target.pathname || '/', cookie.path))
      .filter((cookie) => !cookie.secure || secureChannel)
      .filter((cookie) => sameSiteAllows(cookie, context))
      .sort((a, b) => b.path.length - a.path.length || a.createdAt - b.createdAt);
  }

  /** The `Cookie` request header for `url`, or `undefined` when nothing applies. */
  header(url: URL | string, context?: CookieRequestContext): string | undefined {
    const cookies = this.cookiesFor(url, context);
    if (cookies.length === 0) return undefined;
    return cookies.map((cookie) => (cookie.name === '' ? cookie.value : `${cookie.name}=${cookie.value}`)).join('; ');
  }

  /** The stored cookie called `name` that `url` would receive (same-site context), if any. */
  get(name: string, url?: URL | string): Cookie | undefined {
    if (url) return this.cookiesFor(url).find((cookie) => cookie.name === name);
    this.#evictExpired();
    return this.#cookies.find((cookie) => cookie.name === name);
  }

  all(): Cookie[] {
    this.#evictExpired();
    return [...this.#cookies];
  }

  clear(): void {
    this.#cookies = [];
  }

  #evictExpired(): void {
    const now = this.#now();
    this.#cookies = this.#cookies.filter((cookie) => cookie.expiresAt === undefined || cookie.expiresAt > now);
  }

  #store(url: URL, header: string): SetCookieResult {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return refuse('not an http(s) URL');
    const parsed = parseSetCookie(header);
    if (!parsed) return refuse('no name=value pair');
    const { name, value, attributes } = parsed;
    if (name === '' && value === '') return refuse('empty name and value');
    // biome-ignore lint/suspicious/noControlCharactersInRegex: Chromium refuses cookies with control characters; so does this jar.
    if (/[\x00-\x08\x0a-\x1f\x7f]/.test(name + value)) return refuse('control character in name or value');
    if (name.length + value.length > 4096) return refuse('name and value longer than 4096 bytes');

    const now = this.#now();
    const host = canonicalHost(url);
    const secureOrigin = isSecureOrigin(url);

    // Expiry: the last Max-Age wins over any Expires (§5.6.1/§5.6.2).
    let expiresAt: number | undefined;
    const maxAge = attributes.findLast(([key]) => key === 'max-age');
    const expires = attributes.findLast(([key]) => key === 'expires');
    if (maxAge && /^-?\d+$/.test(maxAge[1])) {
      const seconds = Number(maxAge[1]);
      expiresAt = seconds <= 0 ? -Infinity : now + seconds * 1000;
    } else if (expires) {
      const parsedDate = Date.parse(expires[1]);
      if (!Number.isNaN(parsedDate)) expiresAt = parsedDate;
    }

    let domain = host;
    let hostOnly = true;
    const domainAttribute = attributes.findLast(([key]) => key === 'domain');
    const domainValue = domainAttribute?.[1].trim().replace(/^\./, '').toLowerCase() ?? '';
    if (domainValue !== '') {
      if (isIpHost(host)) {
        if (domainValue !== host && `[${domainValue}]` !== host) return refuse(`Domain=${domainValue} on IP host ${host}`);
      } else {
        if (!domainMatches(host, domainValue)) return refuse(`Domain=${domainValue} does not domain-match ${host}`);
        if (!domainValue.includes('.') && domainValue !== host) return refuse(`Domain=${domainValue} looks like a public suffix`);
      }
      domain = isIpHost(host) ? host : domainValue;
      hostOnly = isIpHost(host);
    }

    const pathAttribute = attributes.findLast(([key]) => key === 'path');
    const path = pathAttribute?.[1].startsWith('/') ? pathAttribute[1] : defaultPath(url);

    const secure = attributes.some(([key]) => key === 'secure');
    const httpOnly = attributes.some(([key]) => key === 'httponly');
    if (secure && !secureOrigin) return refuse('Secure cookie from a non-secure origin');

    let sameSite: SameSite | undefined;
    const sameSiteAttribute = attributes.findLast(([key]) => key === 'samesite');
    if (sameSiteAttribute) {
      const lowered = sameSiteAttribute[1].trim().toLowerCase();
      // Unknown values count as absent (§5.6.7), i.e. Lax by default.
      if (lowered === 'strict' || lowered === 'lax' || lowered === 'none') sameSite = lowered;
    }
    if (sameSite === 'none' && !secure) return refuse('SameSite=None without Secure');

    const lowerName = name.toLowerCase();
    if (lowerName.startsWith('__secure-') && !secure) return refuse('__Secure- prefix without Secure');
    if (lowerName.startsWith('__host-')) {
      if (!secure) return refuse('__Host- prefix without Secure');
      if (domainAttribute) return refuse('__Host- prefix with a Domain attribute');
      if (path !== '/') return refuse('__Host- prefix with a Path other than /');
    }

    // Leave secure cookies alone (§5.6 step 16): an insecure origin may not shadow a Secure cookie.
    if (!secure && !secureOrigin) {
      const shadowed = this.#cookies.some(
        (existing) =>
          existing.secure &&
          existing.name === name &&
          (domainMatches(domain, existing.domain) || domainMatches(existing.domain, domain)) &&
          pathMatches(path, existing.path),
      );
      if (shadowed) return refuse('would overwrite a Secure cookie from a non-secure origin');
    }

    const index = this.#cookies.findIndex(
      (existing) => existing.name === name && existing.domain === domain && existing.hostOnly === hostOnly && existing.path === path,
    );
    const createdAt = index >= 0 ? this.#cookies[index]!.createdAt : now;
    if (index >= 0) this.#cookies.splice(index, 1);
    const cookie: Cookie = { name, value, domain, hostOnly, path, secure, httpOnly, sameSite, expiresAt, createdAt };
    if (expiresAt !== undefined && expiresAt <= now) return { outcome: 'deleted' };
    this.#cookies.push(cookie);
    return { outcome: 'stored', cookie };
  }
}

function refuse(reason: string): SetCookieResult {
  return { outcome: 'refused', reason };
}

/** Splits a Set-Cookie value into its pair and lower-cased attributes (§5.6 steps 1–3, §5.6 attribute parsing). */
export function parseSetCookie(header: string): { name: string; value: string; attributes: [string, string][] } | undefined {
  const [pair = '', ...rest] = header.split(';');
  const eq = pair.indexOf('=');
  // A pair without "=" is a cookie with an empty name (Chromium and 6265bis agree).
  const name = eq < 0 ? '' : pair.slice(0, eq).trim();
  const value = (eq < 0 ? pair : pair.slice(eq + 1)).trim();
  if (eq < 0 && value === '') return undefined;
  const attributes = rest.map((part): [string, string] => {
    const at = part.indexOf('=');
    const key = (at < 0 ? part : part.slice(0, at)).trim().toLowerCase();
    return [key, at < 0 ? '' : part.slice(at + 1).trim()];
  });
  return { name, value, attributes };
}

/** Host without brackets' case issues; IPv6 keeps its brackets as URL gives it. */
function canonicalHost(url: URL): string {
  return url.hostname.toLowerCase();
}

export function isIpHost(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.startsWith('[');
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host.endsWith('.localhost') || /^127(\.\d{1,3}){3}$/.test(host) || host === '[::1]';
}

/** https, or a loopback host (Chromium counts http://localhost as a potentially trustworthy origin). */
export function isSecureOrigin(url: URL): boolean {
  return url.protocol === 'https:' || isLoopback(url.hostname.toLowerCase());
}

/** §5.1.3 domain matching. */
export function domainMatches(host: string, domain: string): boolean {
  if (host === domain) return true;
  return !isIpHost(host) && host.endsWith(`.${domain}`);
}

/** §5.1.4 path matching. */
export function pathMatches(requestPath: string, cookiePath: string): boolean {
  if (requestPath === cookiePath) return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/';
}

/** §5.1.4 default-path: the directory of the request path. */
export function defaultPath(url: URL): string {
  const path = url.pathname;
  if (!path.startsWith('/')) return '/';
  const last = path.lastIndexOf('/');
  return last <= 0 ? '/' : path.slice(0, last);
}

/**
 * Scheme + registrable domain. Without the public suffix list the registrable domain is the last two
 * labels; IP addresses and `localhost` names are their own site. Ports do not matter (RFC 6265bis §5.2).
 */
export function siteOf(url: URL): string {
  const host = url.hostname.toLowerCase();
  let registrable: string;
  if (isIpHost(host)) registrable = host;
  else if (host === 'localhost' || host.endsWith('.localhost')) registrable = 'localhost';
  else registrable = host.split('.').slice(-2).join('.');
  return `${url.protocol}//${registrable}`;
}

function sameSiteAllows(cookie: Cookie, context: CookieRequestContext): boolean {
  if (context.sameSite) return true;
  const mode = cookie.sameSite ?? 'lax';
  if (mode === 'none') return true;
  if (mode === 'strict') return false;
  const safeMethod = context.method === 'GET' || context.method === 'HEAD';
  return context.topLevelNavigation && safeMethod;
}
