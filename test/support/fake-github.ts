/**
 * A small GitHub on https loopback (test CA), reproducing what GitHub documents for OAuth apps and
 * GitHub App user tokens ("Authorizing OAuth apps", "Refreshing user access tokens", "Troubleshooting
 * OAuth app access token request errors", REST "Users", "Emails", "Orgs", "Teams"):
 *
 * - `GET /login/oauth/authorize`: checks client_id and redirect_uri (same host and port as the
 *   registered callback, path under it, else a redirect to the callback with
 *   `error=redirect_uri_mismatch`), PKCE `S256` only; shows an "Authorize" page with a user chooser
 *   (`login` select, "Authorize"/"Cancel" buttons). Cancel answers `error=access_denied`.
 * - `POST /login/oauth/access_token`: client credentials in the body (or HTTP Basic); codes single use,
 *   10 minutes; the PKCE verifier really checked; the answer is form-encoded unless the request says
 *   `Accept: application/json`; every OAuth error comes with HTTP 200 (`incorrect_client_credentials`,
 *   `bad_verification_code`, `redirect_uri_mismatch`, `bad_refresh_token`, `unsupported_grant_type`).
 *   With `expiringTokens`, `ghu_` access tokens with `expires_in`, `ghr_` refresh tokens with
 *   `refresh_token_expires_in`, rotated on each refresh; otherwise non-expiring `gho_` tokens.
 * - REST API at the root (github.com layout, where the API is its own host) or under `/api/v3`
 *   (`layout: 'enterprise'`, GitHub Enterprise Server): `/user`, `/user/emails` (needs `user:email`),
 *   `/user/orgs` and `/user/teams` (need `read:org`), paginated with `per_page`/`page` and `Link`;
 *   `401 Bad credentials` for unknown or expired tokens, `403` without a User-Agent, `X-OAuth-Scopes`.
 *
 * Failure switches: `failWith(status, pathPrefix)`, `rateLimit(pathPrefix)` (403 with
 * `x-ratelimit-remaining: 0`, or 429 on the token endpoint's secondary limit), `close()`.
 *
 * @example
 * const github = await startFakeGithub({ clientId: 'Iv1.abc', clientSecret: 's', callbackUrl: 'http://localhost:8080/callback',
 *   users: { octocat: { id: 583231, name: 'The Octocat', emails: [{ email: 'octo@example.com', primary: true, verified: true }] } } });
 * page = await browser.goto(authorizationUrl);             // the Authorize page
 * page = await github.approve(browser, page, 'octocat', { stopAt: 'http://localhost:8080/callback' });
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { Browser, Page, UrlMatcher } from './browser.ts';
import { closeServer, listen } from './ports.ts';
import type { TestCa } from './tls.ts';
import { createTestCa } from './tls.ts';

export interface FakeGithubEmail {
  email: string;
  primary: boolean;
  verified: boolean;
  visibility?: 'public' | 'private' | null;
}

export interface FakeGithubUser {
  id: number;
  name?: string | null;
  /** The public profile email (what `/user` shows); not necessarily verified. */
  email?: string | null;
  emails?: FakeGithubEmail[];
  orgs?: string[];
  /** Teams as `org/team-slug`. */
  teams?: string[];
}

export interface FakeGithubOptions {
  clientId: string;
  clientSecret: string;
  /** The app's registered callback URL. */
  callbackUrl: string;
  /** Users by login. */
  users: Record<string, FakeGithubUser>;
  /** `dotcom` (API at the root, as api.github.com) or `enterprise` (API under `/api/v3`). Default dotcom. */
  layout?: 'dotcom' | 'enterprise';
  /** Expiring user tokens (GitHub Apps; opt-in for OAuth apps). Mutable on the handle. */
  expiringTokens?: boolean;
  /** Seconds; GitHub's are 8 hours and 6 months. */
  accessTokenTtl?: number;
  refreshTokenTtl?: number;
  /** Largest page served (GitHub: 100), to exercise pagination with few items. */
  maxPerPage?: number;
  tls?: TestCa;
}

export interface FakeGithubRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: Record<string, string>;
  body: string;
}

export interface FakeGithub {
  /** https://127.0.0.1:<port>: the web base URL (`baseUrl` in the gateway's config). */
  readonly origin: string;
  /** Where the REST API is: the origin (dotcom layout) or `<origin>/api/v3` (enterprise). */
  readonly apiUrl: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly users: Record<string, FakeGithubUser>;
  /** The registered callback URL; settable, for a gateway whose port is known only after the fake started. */
  callbackUrl: string;
  expiringTokens: boolean;
  /** Every request, in order. */
  readonly requests: FakeGithubRequest[];
  /** Successful authorizations by login, in order. */
  readonly authorizations: string[];
  failWith(status: number | undefined, pathPrefix?: string): void;
  rateLimit(pathPrefix: string | undefined): void;
  /** Chooses `login` on the Authorize page and presses "Authorize". */
  approve(browser: Browser, page: Page, login: string, options?: { stopAt?: UrlMatcher }): Promise<Page>;
  /** Presses "Cancel" on the Authorize page. */
  cancel(browser: Browser, page: Page, options?: { stopAt?: UrlMatcher }): Promise<Page>;
  /** Makes every issued access token expired (refresh tests). */
  expireAccessTokens(): void;
  close(): Promise<void>;
}

interface CodeGrant {
  login: string;
  redirectUri: string;
  scopes: string[];
  challenge?: string;
  expiresAt: number;
  used: boolean;
}

interface AccessToken {
  login: string;
  scopes: string[];
  expiresAt?: number;
}

const DOCS = 'https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors';

export async function startFakeGithub(options: FakeGithubOptions): Promise<FakeGithub> {
  const tls = options.tls ?? (await createTestCa());
  const layout = options.layout ?? 'dotcom';
  const apiPrefix = layout === 'enterprise' ? '/api/v3' : '';
  const codes = new Map<string, CodeGrant>();
  const accessTokens = new Map<string, AccessToken>();
  const refreshTokens = new Map<string, { login: string; scopes: string[]; expiresAt: number }>();
  const requests: FakeGithubRequest[] = [];
  const authorizations: string[] = [];
  let failure: { status: number; prefix: string } | undefined;
  let rateLimited: string | undefined;
  const now = () => Math.floor(Date.now() / 1000);

  const server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    void handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) json(res, 500, { message: `fake GitHub failed: ${String(error)}` });
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://fake-github.invalid');
    const body = await readBody(req);
    const headers = Object.fromEntries(Object.entries(req.headers).map(([key, value]) => [key, Array.isArray(value) ? value.join(', ') : (value ?? '')]));
    requests.push({ method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, headers, body });

    if (failure && url.pathname.startsWith(failure.prefix)) {
      json(res, failure.status, { message: 'Server Error' });
      return;
    }
    if (rateLimited !== undefined && url.pathname.startsWith(rateLimited)) {
      if (url.pathname === '/login/oauth/access_token') {
        json(res, 429, { message: 'You have exceeded a secondary rate limit.' }, { 'retry-after': '60' });
      } else {
        json(
          res,
          403,
          {
            message: 'API rate limit exceeded for user ID 1.',
            documentation_url: 'https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting',
          },
          { 'x-ratelimit-limit': '5000', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(now() + 3600), 'x-ratelimit-resource': 'core' },
        );
      }
      return;
    }
    if (url.pathname === '/login/oauth/authorize' && req.method === 'GET') return authorizePage(url, res);
    if (url.pathname === '/login/oauth/authorize' && req.method === 'POST') return authorizeDecision(new URLSearchParams(body), res);
    if (url.pathname === '/login/oauth/access_token' && req.method === 'POST') return tokenEndpoint(req, body, res);
    if (url.pathname.startsWith(`${apiPrefix}/`) && req.method === 'GET') return api(url.pathname.slice(apiPrefix.length), url, req, res);
    json(res, 404, { message: 'Not Found', documentation_url: 'https://docs.github.com/rest' });
  }

  /** GitHub: same host and port as the registered callback, and a path at or under its path. */
  function redirectAllowed(redirectUri: string): boolean {
    const registered = new URL(handle_.callbackUrl);
    const candidate = URL.parse(redirectUri);
    if (!candidate) return false;
    const base = registered.pathname.replace(/\/$/, '');
    return (
      candidate.protocol === registered.protocol &&
      candidate.host === registered.host &&
      (candidate.pathname === registered.pathname || candidate.pathname.startsWith(`${base}/`))
    );
  }

  function authorizePage(url: URL, res: ServerResponse): void {
    const query = url.searchParams;
    if (query.get('client_id') !== options.clientId) {
      html(res, 404, '<h1>404</h1><p>This is not the web page you are looking for.</p>');
      return;
    }
    const redirectUri = query.get('redirect_uri') ?? handle_.callbackUrl;
    if (!redirectAllowed(redirectUri)) {
      redirectWith(res, handle_.callbackUrl, {
        error: 'redirect_uri_mismatch',
        error_description: 'The redirect_uri MUST match the registered callback URL for this application.',
        error_uri: DOCS,
        state: query.get('state'),
      });
      return;
    }
    const challenge = query.get('code_challenge');
    const method = query.get('code_challenge_method');
    if ((challenge !== null || method !== null) && (method !== 'S256' || !challenge || !/^[A-Za-z0-9_-]{43}$/.test(challenge))) {
      // Only S256 is supported; the plain method is refused.
      html(res, 400, '<h1>Bad request</h1><p>code_challenge_method must be S256 with a valid code_challenge.</p>');
      return;
    }
    const hidden = ['client_id', 'redirect_uri', 'scope', 'state', 'code_challenge', 'code_challenge_method']
      .map((name) => [name, name === 'redirect_uri' ? redirectUri : query.get(name)] as const)
      .filter((entry): entry is readonly [string, string] => entry[1] !== null)
      .map(([name, value]) => `<input type="hidden" name="${name}" value="${escapeHtml(value)}">`)
      .join('');
    const users = Object.keys(options.users)
      .map((login) => `<option value="${escapeHtml(login)}">${escapeHtml(login)}</option>`)
      .join('');
    html(
      res,
      200,
      `<!doctype html><html><head><title>Authorize application</title></head><body>
<h1>Authorize application</h1><p>Scopes: ${escapeHtml(query.get('scope') ?? '(none)')}</p>
<form method="post" action="/login/oauth/authorize">${hidden}
<label>Signed in as <select name="login">${users}</select></label>
<button type="submit" name="authorize" value="1">Authorize</button>
<button type="submit" name="authorize" value="0">Cancel</button>
</form></body></html>`,
    );
  }

  function authorizeDecision(form: URLSearchParams, res: ServerResponse): void {
    const redirectUri = form.get('redirect_uri') ?? handle_.callbackUrl;
    if (form.get('client_id') !== options.clientId || !redirectAllowed(redirectUri)) {
      html(res, 400, '<h1>Bad request</h1>');
      return;
    }
    const state = form.get('state');
    if (form.get('authorize') !== '1') {
      redirectWith(res, redirectUri, {
        error: 'access_denied',
        error_description: 'The user has denied your application access.',
        error_uri: 'https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#access-denied',
        state,
      });
      return;
    }
    const login = form.get('login') ?? '';
    if (!options.users[login]) {
      html(res, 400, '<h1>Unknown user</h1>');
      return;
    }
    const code = randomBytes(10).toString('hex');
    const grant: CodeGrant = {
      login,
      redirectUri,
      scopes: (form.get('scope') ?? '').split(/[\s,]+/).filter(Boolean),
      expiresAt: now() + 600,
      used: false,
    };
    const challenge = form.get('code_challenge');
    if (challenge) grant.challenge = challenge;
    codes.set(code, grant);
    authorizations.push(login);
    redirectWith(res, redirectUri, { code, state });
  }

  function tokenEndpoint(req: IncomingMessage, body: string, res: ServerResponse): void {
    const params = (req.headers['content-type'] ?? '').includes('application/json') ? jsonParams(body) : new URLSearchParams(body);
    const wantsJson = (req.headers.accept ?? '').includes('application/json');
    const answer = (fields: Record<string, string | number>) => {
      // GitHub's documented default is form-encoded; JSON only when asked. Errors are HTTP 200 too.
      if (wantsJson) json(res, 200, fields);
      else {
        const encoded = new URLSearchParams(Object.entries(fields).map(([key, value]) => [key, String(value)])).toString();
        res.writeHead(200, { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8', 'cache-control': 'no-store' });
        res.end(encoded);
      }
    };
    const error = (code: string, description: string) => answer({ error: code, error_description: description, error_uri: DOCS });

    let clientId = params.get('client_id');
    let clientSecret = params.get('client_secret');
    const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? '');
    if (basic?.[1]) {
      const decoded = Buffer.from(basic[1], 'base64').toString();
      const colon = decoded.indexOf(':');
      clientId = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '));
      clientSecret = decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' '));
    }
    if (clientId !== options.clientId || !clientSecret || !sameText(clientSecret, options.clientSecret)) {
      error('incorrect_client_credentials', 'The client_id and/or client_secret passed are incorrect.');
      return;
    }

    const grantType = params.get('grant_type') ?? 'authorization_code';
    if (grantType === 'refresh_token') {
      const presented = params.get('refresh_token') ?? '';
      const stored = refreshTokens.get(presented);
      if (!stored || stored.expiresAt <= now()) {
        error('bad_refresh_token', 'The refresh token passed is incorrect or expired.');
        return;
      }
      refreshTokens.delete(presented); // rotated: a refresh token works once
      answer(issueTokens(stored.login, stored.scopes));
      return;
    }
    if (grantType !== 'authorization_code') {
      error('unsupported_grant_type', 'The grant type is not supported.');
      return;
    }
    const code = params.get('code') ?? '';
    const grant = codes.get(code);
    if (!grant || grant.used || grant.expiresAt <= now()) {
      error('bad_verification_code', 'The code passed is incorrect or expired.');
      return;
    }
    grant.used = true;
    const redirectUri = params.get('redirect_uri');
    if (redirectUri !== null && redirectUri !== grant.redirectUri) {
      error('redirect_uri_mismatch', 'The redirect_uri MUST match the registered callback URL for this application.');
      return;
    }
    if (grant.challenge) {
      // RFC 7636 §4.6. GitHub does not document the error it uses for a wrong verifier; the code is
      // refused the same way as an invalid one.
      const verifier = params.get('code_verifier') ?? '';
      const computed = createHash('sha256').update(verifier).digest('base64url');
      if (!/^[A-Za-z0-9._~-]{43,128}$/.test(verifier) || computed !== grant.challenge) {
        error('bad_verification_code', 'The code_verifier does not match the code_challenge.');
        return;
      }
    }
    answer(issueTokens(grant.login, grant.scopes));
  }

  function issueTokens(login: string, scopes: string[]): Record<string, string | number> {
    const expiring = handle_.expiringTokens;
    const accessToken = `${expiring ? 'ghu_' : 'gho_'}${randomBytes(18).toString('base64url')}`;
    const record: AccessToken = { login, scopes };
    const fields: Record<string, string | number> = { access_token: accessToken };
    if (expiring) {
      const accessTtl = options.accessTokenTtl ?? 28_800;
      const refreshTtl = options.refreshTokenTtl ?? 15_897_600;
      record.expiresAt = now() + accessTtl;
      const refreshToken = `ghr_${randomBytes(30).toString('base64url')}`;
      refreshTokens.set(refreshToken, { login, scopes, expiresAt: now() + refreshTtl });
      fields.expires_in = accessTtl;
      fields.refresh_token = refreshToken;
      fields.refresh_token_expires_in = refreshTtl;
    }
    accessTokens.set(accessToken, record);
    fields.token_type = 'bearer';
    // GitHub lists granted scopes comma-separated; GitHub App tokens have an empty scope.
    fields.scope = scopes.join(',');
    return fields;
  }

  function api(path: string, url: URL, req: IncomingMessage, res: ServerResponse): void {
    if (!req.headers['user-agent']) {
      html(
        res,
        403,
        'Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes.',
      );
      return;
    }
    const presented = /^(?:Bearer|token) (\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const token = presented ? accessTokens.get(presented) : undefined;
    if (!token || (token.expiresAt !== undefined && token.expiresAt <= now())) {
      json(res, 401, { message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest', status: '401' });
      return;
    }
    const user = options.users[token.login]!;
    const scopeHeaders = {
      'x-oauth-scopes': token.scopes.join(', '),
      'x-ratelimit-limit': '5000',
      'x-ratelimit-remaining': '4999',
      'x-ratelimit-reset': String(now() + 3600),
    };
    const has = (...accepted: string[]) => accepted.some((scope) => token.scopes.includes(scope));
    switch (path) {
      case '/user':
        json(
          res,
          200,
          {
            login: token.login,
            id: user.id,
            node_id: `U_${user.id}`,
            type: 'User',
            site_admin: false,
            avatar_url: `https://avatars.githubusercontent.com/u/${user.id}?v=4`,
            name: user.name ?? null,
            email: user.email ?? null,
            plan: { name: 'free', collaborators: 0, private_repos: 10000, space: 976562499 },
          },
          { ...scopeHeaders, 'x-accepted-oauth-scopes': '' },
        );
        return;
      case '/user/emails':
        if (!has('user', 'user:email')) {
          json(
            res,
            404,
            {
              message: 'Not Found',
              documentation_url: 'https://docs.github.com/rest/users/emails#list-email-addresses-for-the-authenticated-user',
              status: '404',
            },
            { ...scopeHeaders, 'x-accepted-oauth-scopes': 'user, user:email' },
          );
          return;
        }
        paginate(
          url,
          res,
          (user.emails ?? []).map((entry) => ({ visibility: null, ...entry })),
          { ...scopeHeaders, 'x-accepted-oauth-scopes': 'user, user:email' },
        );
        return;
      case '/user/orgs':
      case '/user/teams': {
        const accepted = path === '/user/orgs' ? 'admin:org, read:org, repo, user, write:org' : 'admin:org, read:org, repo, user, write:org';
        if (!has('read:org', 'write:org', 'admin:org', 'user', 'repo')) {
          json(
            res,
            403,
            {
              message: 'You need at least read:org scope or user scope to list your organizations.',
              documentation_url: 'https://docs.github.com/rest/orgs/orgs#list-organizations-for-the-authenticated-user',
              status: '403',
            },
            { ...scopeHeaders, 'x-accepted-oauth-scopes': accepted },
          );
          return;
        }
        const items =
          path === '/user/orgs'
            ? (user.orgs ?? []).map((login, index) => ({
                login,
                id: 1000 + index,
                node_id: `O_${login}`,
                url: `${origin}${apiPrefix}/orgs/${login}`,
                description: null,
              }))
            : (user.teams ?? []).map((team, index) => {
                const [org, slug] = team.split('/') as [string, string];
                return {
                  id: 2000 + index,
                  node_id: `T_${team}`,
                  name: slug,
                  slug,
                  privacy: 'closed',
                  permission: 'pull',
                  organization: { login: org, id: 1000 + index },
                };
              });
        paginate(url, res, items, { ...scopeHeaders, 'x-accepted-oauth-scopes': accepted });
        return;
      }
      default:
        json(res, 404, { message: 'Not Found', documentation_url: 'https://docs.github.com/rest' });
    }
  }

  /** GitHub pagination: `per_page` (default 30, max 100) and `page`, with a `Link` header. */
  function paginate(url: URL, res: ServerResponse, items: unknown[], headers: Record<string, string>): void {
    const max = Math.min(100, options.maxPerPage ?? 100);
    const perPage = Math.min(max, Math.max(1, Number(url.searchParams.get('per_page') ?? 30) || 30));
    const page = Math.max(1, Number(url.searchParams.get('page') ?? 1) || 1);
    const last = Math.max(1, Math.ceil(items.length / perPage));
    const links: string[] = [];
    const pageUrl = (n: number) => {
      const target = new URL(`${origin}${url.pathname}`);
      target.searchParams.set('per_page', String(perPage));
      target.searchParams.set('page', String(n));
      return target.href;
    };
    if (page < last) links.push(`<${pageUrl(page + 1)}>; rel="next"`, `<${pageUrl(last)}>; rel="last"`);
    if (page > 1) links.push(`<${pageUrl(1)}>; rel="first"`, `<${pageUrl(page - 1)}>; rel="prev"`);
    json(res, 200, items.slice((page - 1) * perPage, page * perPage), links.length > 0 ? { ...headers, link: links.join(', ') } : headers);
  }

  const port = await listen(server);
  const origin = `https://127.0.0.1:${port}`;

  const handle_: FakeGithub = {
    origin,
    apiUrl: `${origin}${apiPrefix}`,
    clientId: options.clientId,
    clientSecret: options.clientSecret,
    users: options.users,
    callbackUrl: options.callbackUrl,
    expiringTokens: options.expiringTokens ?? false,
    requests,
    authorizations,
    failWith(status, pathPrefix = '/') {
      failure = status === undefined ? undefined : { status, prefix: pathPrefix };
    },
    rateLimit(pathPrefix) {
      rateLimited = pathPrefix;
    },
    approve(browser, page, login, approveOptions = {}) {
      return browser.submitForm(page, { form: '/login/oauth/authorize', fields: { login }, button: 'Authorize', stopAt: approveOptions.stopAt });
    },
    cancel(browser, page, cancelOptions = {}) {
      return browser.submitForm(page, { form: '/login/oauth/authorize', button: 'Cancel', stopAt: cancelOptions.stopAt });
    },
    expireAccessTokens() {
      for (const token of accessTokens.values()) token.expiresAt = now() - 1;
    },
    close: () => closeServer(server),
  };
  return handle_;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function jsonParams(body: string): URLSearchParams {
  try {
    const value = JSON.parse(body) as Record<string, unknown>;
    return new URLSearchParams(Object.entries(value).filter(([, v]) => typeof v === 'string') as [string, string][]);
  } catch {
    return new URLSearchParams();
  }
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(JSON.stringify(body));
}

function html(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
  res.end(body);
}

function redirectWith(res: ServerResponse, target: string, params: Record<string, string | null>): void {
  const url = new URL(target);
  for (const [key, value] of Object.entries(params)) if (value !== null) url.searchParams.set(key, value);
  res.writeHead(302, { location: url.href });
  res.end();
}

function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}
