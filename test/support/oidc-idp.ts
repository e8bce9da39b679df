/**
 * A real OpenID Provider (oidc-provider) on https loopback playing the organisation's IdP (Entra, Okta,
 * Keycloak…): no dynamic registration, one pre-registered confidential client, PKCE required, code +
 * refresh_token grants, `offline_access`, userinfo, and ID tokens carrying `email`, `email_verified`,
 * `name`, `preferred_username` and `groups`. It has its own small login page (username + password,
 * "Sign in" / "Cancel") and consents automatically, as a first-party corporate app does.
 *
 * Failure modes for tests: `denyAll` (valid credentials, then error=access_denied, like "user not
 * assigned to this application"), `failWith(503, '/token')` (an endpoint answers 5xx), `hang('/token')`
 * (an endpoint never answers), `stop()` /
 * `start()` (the IdP is down, then back on the same port), `close()`.
 *
 * @example
 * const idp = await startOidcIdp({
 *   clientId: 'gateway', clientSecret: 's3cret', redirectUris: ['https://localhost:8443/callback'],
 *   users: { alice: { email: 'alice@example.com', email_verified: true, name: 'Alice', groups: ['eng'] } },
 * });
 * // … browser reaches the IdP login page …
 * page = await idp.signIn(browser, page, 'alice', { stopAt: 'https://localhost:8443/callback' });
 * await idp.close();
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:https';
import type { Configuration, InteractionResults, JWK, KoaContextWithOIDC } from 'oidc-provider';
import Provider from 'oidc-provider';
import type { Browser, Page, UrlMatcher } from './browser.ts';
import { createMemoryAdapter } from './oidc-memory-adapter.ts';
import { closeServer, listen } from './ports.ts';
import type { TestCa } from './tls.ts';
import { createTestCa } from './tls.ts';

/** Password of every test user that does not set its own. */
export const DEFAULT_PASSWORD = 'correct horse battery staple';

/** A user of the IdP. The username is the map key; `sub` defaults to it. Other keys become claims. */
export interface TestUser {
  password?: string;
  sub?: string;
  email?: string;
  email_verified?: boolean;
  name?: string;
  preferred_username?: string;
  groups?: string[];
  [claim: string]: unknown;
}

export interface OidcIdpOptions {
  clientId: string;
  /** The confidential client's secret. */
  clientSecret: string;
  /** Exact redirect URIs registered for the client (the gateway's callback). */
  redirectUris: string[];
  users: Record<string, TestUser>;
  /**
   * How the client authenticates at the token endpoint; it is also the only method the metadata
   * advertises, like an IdP whose app registration fixes it. Default client_secret_basic.
   */
  tokenEndpointAuthMethod?: 'client_secret_basic' | 'client_secret_post';
  /** Host in the issuer URL. 127.0.0.1 keeps the IdP's cookies apart from a gateway on `localhost`. */
  host?: '127.0.0.1' | 'localhost';
  /** Plain http instead of https (a local-development IdP; the gateway allows http only on loopback). */
  insecureHttp?: boolean;
  /** Certificates; default the process-wide test CA. */
  tls?: TestCa;
  /** Start with every login denied (can be changed later on the handle). */
  denyAll?: boolean;
  /**
   * `all` (default): scope claims are in the ID token too. `minimal`: the ID token has only `sub` (and
   * `groups`); email/name come from userinfo alone (oidc-provider's `conformIdTokenClaims`, like IdPs
   * that keep ID tokens small).
   */
  idTokenClaims?: 'all' | 'minimal';
  /** Lifetimes in seconds. */
  ttl?: { accessToken?: number; idToken?: number; refreshToken?: number; authorizationCode?: number };
  /**
   * oidc-provider follows OIDC Core §11 to the letter: `offline_access` is dropped unless the request
   * has `prompt=consent`. Entra, Okta and Keycloak issue a refresh token for `offline_access` without
   * it, so by default this IdP adds `prompt=consent` itself (consent is automatic here anyway). `true`
   * keeps the strict behaviour (Google-like: no refresh token without a consent prompt).
   */
  strictOfflineAccess?: boolean;
  /** Overrides oidc-provider's claims mapping (scope → claims). */
  claims?: Configuration['claims'];
  /**
   * A new refresh token on every refresh, the old one dead at once (and its reuse revoking the grant,
   * oidc-provider's reuse detection): Okta's "rotate token after every use", Entra, Auth0 rotation.
   * Default: oidc-provider's rule (no rotation for a confidential client).
   */
  rotateRefreshToken?: boolean;
  /**
   * Path of the issuer under the origin, as the IdP writes it: `/realms/acme` (Keycloak),
   * `/application/o/app/` (authentik, trailing slash kept), `/` (Auth0's `https://host/`). The
   * provider is mounted there; requests outside it reach only `intercept`. Default: none (issuer =
   * origin, no trailing slash).
   */
  issuerPath?: string;
  /**
   * Sees every request first (after `failWith`/`hang`), with the full path: answer it and return true,
   * or adjust `req.url`/wrap `res` and return false to let the provider handle it. For the quirks of a
   * particular IdP (test/support/idp-standins.ts).
   */
  intercept?: (req: IncomingMessage, res: ServerResponse, url: URL) => boolean;
}

export interface RecordedRequest {
  method: string;
  path: string;
  /** Query parameters (authorization requests arrive as GET /auth?…). */
  query: URLSearchParams;
}

export interface OidcIdp {
  /** The issuer URL, e.g. https://127.0.0.1:40123 (no trailing slash), or origin + `issuerPath`. */
  readonly issuer: string;
  readonly port: number;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly users: Record<string, TestUser>;
  /** The oidc-provider instance, for what the options do not cover. */
  readonly provider: Provider;
  /** Deny every login after the password check (error=access_denied to the client). Mutable. */
  denyAll: boolean;
  /** Every request received, in order. */
  readonly requests: RecordedRequest[];
  /** The query of every authorization request (GET /auth), to assert what the gateway sent. */
  readonly authorizationRequests: URLSearchParams[];
  /** Usernames that signed in successfully, in order. */
  readonly logins: string[];
  /** Answer requests whose path starts with `pathPrefix` (default: all) with `status`; `undefined` clears. */
  failWith(status: number | undefined, pathPrefix?: string): void;
  /** Never answer requests whose path starts with `pathPrefix` (timeouts); `undefined` clears. */
  hang(pathPrefix: string | undefined): void;
  /**
   * Submits the IdP login form on `page` (which must be the IdP's login page) and follows redirects.
   * `password` defaults to the user's (or DEFAULT_PASSWORD).
   */
  signIn(browser: Browser, page: Page, username: string, options?: { password?: string; stopAt?: UrlMatcher }): Promise<Page>;
  /** Presses "Cancel" on the login page (the IdP answers error=access_denied). */
  cancel(browser: Browser, page: Page, options?: { stopAt?: UrlMatcher }): Promise<Page>;
  /** Stops listening and drops connections: the IdP is down. */
  stop(): Promise<void>;
  /** Listens again on the same port after `stop()`. */
  start(): Promise<void>;
  close(): Promise<void>;
}

let signingKey: JWK | undefined;

/**
 * One RSA key per process: RS256 is what every RP accepts by default, and generating it is slow.
 * Exported for stand-ins that re-sign an ID token they altered (test/support/idp-standins.ts).
 */
export function idpSigningKey(): JWK {
  if (!signingKey) {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-idp-rs256', alg: 'RS256', use: 'sig' } as JWK;
  }
  return signingKey;
}

export async function startOidcIdp(options: OidcIdpOptions): Promise<OidcIdp> {
  const certificates = options.tls ?? (options.insecureHttp ? undefined : await createTestCa());
  const host = options.host ?? '127.0.0.1';
  const authMethod = options.tokenEndpointAuthMethod ?? 'client_secret_basic';
  const requests: RecordedRequest[] = [];
  const authorizationRequests: URLSearchParams[] = [];
  const logins: string[] = [];
  const failures = new Map<string, number>();
  let hanging: string | undefined;

  // The issuer must contain the port, so listen first and plug the provider in afterwards.
  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.statusCode = 503;
    res.end();
  };
  const server: HttpServer = options.insecureHttp
    ? createHttpServer((req, res) => handler(req, res))
    : createServer({ cert: certificates!.certPem, key: certificates!.keyPem }, (req, res) => handler(req, res));
  const port = await listen(server, host);
  const origin = `${options.insecureHttp ? 'http' : 'https'}://${host}:${port}`;
  const issuer = options.issuerPath ? `${origin}${options.issuerPath.startsWith('/') ? '' : '/'}${options.issuerPath}` : origin;
  /** Where the provider is mounted: the issuer's path without a trailing slash ('' at the root). */
  const mountPath = new URL(issuer).pathname.replace(/\/+$/, '');

  const usersBySub = new Map<string, { username: string; user: TestUser }>();
  for (const [username, user] of Object.entries(options.users)) usersBySub.set(user.sub ?? username, { username, user });

  // Every lifetime is set: oidc-provider prints a NOTICE for each default ttl function it calls.
  const ttl: NonNullable<Configuration['ttl']> = {
    AccessToken: options.ttl?.accessToken ?? 3600,
    IdToken: options.ttl?.idToken ?? 3600,
    RefreshToken: options.ttl?.refreshToken ?? 14 * 86400,
    AuthorizationCode: options.ttl?.authorizationCode ?? 60,
    Interaction: 3600,
    Session: 14 * 86400,
    Grant: 14 * 86400,
  };

  const provider = new Provider(issuer, {
    adapter: createMemoryAdapter(),
    clients: [
      {
        client_id: options.clientId,
        client_secret: options.clientSecret,
        redirect_uris: options.redirectUris,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: authMethod,
      },
    ],
    clientAuthMethods: [authMethod],
    // A registered redirect_uri must always be sent, as stricter IdPs require.
    allowOmittingSingleRegisteredRedirectUri: false,
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      registration: { enabled: false },
      userinfo: { enabled: true },
      revocation: { enabled: true },
    },
    // `groups` rides with `openid`, so it is there without a special scope (Entra's groups claim).
    claims: options.claims ?? {
      openid: ['sub', 'groups'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username', 'given_name', 'family_name'],
    },
    conformIdTokenClaims: options.idTokenClaims === 'minimal',
    findAccount: (_ctx: KoaContextWithOIDC, sub: string) => {
      const found = usersBySub.get(sub);
      if (!found) return undefined;
      const { password: _password, sub: _sub, ...claims } = found.user;
      return { accountId: sub, claims: () => ({ ...claims, sub }) };
    },
    interactions: { url: (_ctx: KoaContextWithOIDC, interaction) => `${mountPath}/interaction/${interaction.uid}` },
    // Distinct names: a gateway built on oidc-provider uses the default `_session`/`_interaction` names,
    // and cookies are not separated by port, so on the same host the two would overwrite each other.
    cookies: {
      keys: [randomBytes(32).toString('base64url')],
      names: { session: 'idp_session', interaction: 'idp_interaction', resume: 'idp_resume' },
    },
    jwks: { keys: [idpSigningKey()] },
    ttl,
    ...(options.rotateRefreshToken !== undefined ? { rotateRefreshToken: options.rotateRefreshToken } : {}),
  });
  const providerCallback = provider.callback();

  let denyAll = options.denyAll ?? false;

  const renderLogin = (res: ServerResponse, uid: string, clientId: string, error?: string, username = '') => {
    const body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Test IdP - Sign in</title></head>
<body>
<h1>Sign in to the Test IdP</h1>
<p>Application: ${escapeHtml(clientId)}</p>
${error ? `<p role="alert" class="error">${escapeHtml(error)}</p>` : ''}
<form method="post" action="${escapeHtml(mountPath)}/interaction/${escapeHtml(uid)}" autocomplete="off">
  <label>Username <input type="text" name="username" value="${escapeHtml(username)}" autofocus></label>
  <label>Password <input type="password" name="password"></label>
  <button type="submit" name="action" value="login">Sign in</button>
  <button type="submit" name="action" value="cancel">Cancel</button>
</form>
</body></html>`;
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(body);
  };

  const finish = async (req: IncomingMessage, res: ServerResponse, result: InteractionResults) => {
    await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
  };

  /** Grants everything asked (a first-party app needs no consent screen). */
  const autoConsent = async (req: IncomingMessage, res: ServerResponse) => {
    const { prompt, params, session, grantId } = await provider.interactionDetails(req, res);
    const grant = grantId ? await provider.Grant.find(grantId) : new provider.Grant({ accountId: session!.accountId, clientId: String(params.client_id) });
    if (!grant) throw new Error('grant not found');
    const details = prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
    if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
    if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(details.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
    await finish(req, res, { consent: { grantId: await grant.save() } });
  };

  const interaction = async (req: IncomingMessage, res: ServerResponse, uid: string) => {
    const details = await provider.interactionDetails(req, res);
    const clientId = String(details.params.client_id);
    if (req.method === 'GET') {
      if (details.prompt.name === 'login') return renderLogin(res, uid, clientId);
      if (details.prompt.name === 'consent') return autoConsent(req, res);
      throw new Error(`unexpected prompt ${details.prompt.name}`);
    }
    if (req.method !== 'POST') {
      res.writeHead(405).end();
      return;
    }
    const form = new URLSearchParams(await readBody(req));
    if (form.get('action') === 'cancel') {
      return finish(req, res, { error: 'access_denied', error_description: 'End-User cancelled the sign-in' });
    }
    const username = form.get('username') ?? '';
    const user = options.users[username];
    if (!user || form.get('password') !== (user.password ?? DEFAULT_PASSWORD)) {
      return renderLogin(res, uid, clientId, 'Wrong username or password.', username);
    }
    if (denyAll) {
      return finish(req, res, { error: 'access_denied', error_description: 'The user is not assigned to this application' });
    }
    logins.push(username);
    return finish(req, res, { login: { accountId: user.sub ?? username } });
  };

  handler = (req, res) => {
    let url = new URL(req.url ?? '/', origin);
    requests.push({ method: req.method ?? 'GET', path: url.pathname, query: url.searchParams });
    if (hanging !== undefined && url.pathname.startsWith(hanging)) return; // closed by stop()/close()
    for (const [prefix, status] of failures) {
      if (url.pathname.startsWith(prefix)) {
        res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(JSON.stringify({ error: 'temporarily_unavailable', error_description: 'test IdP failure' }));
        return;
      }
    }
    if (options.intercept?.(req, res, url)) return;
    if (mountPath !== '') {
      // Mounted under the issuer's path: oidc-provider derives its mount point from originalUrl vs url.
      const full = req.url ?? '/';
      const path = new URL(full, origin).pathname;
      if (path !== mountPath && !path.startsWith(`${mountPath}/`)) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
        return;
      }
      (req as IncomingMessage & { originalUrl?: string }).originalUrl = full;
      req.url = full.slice(mountPath.length) || '/';
      url = new URL(req.url, origin);
    }
    if (url.pathname === '/auth' && req.method === 'GET') {
      authorizationRequests.push(new URLSearchParams(url.searchParams));
      const scopes = url.searchParams.get('scope')?.split(' ') ?? [];
      if (!options.strictOfflineAccess && scopes.includes('offline_access') && !url.searchParams.has('prompt')) {
        url.searchParams.set('prompt', 'consent');
        req.url = `${url.pathname}${url.search}`;
        if (mountPath !== '') (req as IncomingMessage & { originalUrl?: string }).originalUrl = `${mountPath}${req.url}`;
      }
    }
    const match = /^\/interaction\/([^/]+)$/.exec(url.pathname);
    if (!match) {
      providerCallback(req, res);
      return;
    }
    interaction(req, res, decodeURIComponent(match[1]!)).catch((error: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`test IdP interaction failed: ${String(error)}`);
    });
  };

  const idp: OidcIdp = {
    issuer,
    port,
    clientId: options.clientId,
    clientSecret: options.clientSecret,
    users: options.users,
    provider,
    get denyAll() {
      return denyAll;
    },
    set denyAll(value: boolean) {
      denyAll = value;
    },
    requests,
    authorizationRequests,
    logins,
    failWith(status, pathPrefix = '/') {
      if (status === undefined) failures.delete(pathPrefix);
      else failures.set(pathPrefix, status);
      if (status === undefined && pathPrefix === '/') failures.clear();
    },
    hang(pathPrefix) {
      hanging = pathPrefix;
    },
    async signIn(browser, page, username, signInOptions = {}) {
      assertLoginPage(page, `${origin}${mountPath}`);
      const password = signInOptions.password ?? options.users[username]?.password ?? DEFAULT_PASSWORD;
      return browser.submitForm(page, { form: '/interaction/', fields: { username, password }, button: 'login', stopAt: signInOptions.stopAt });
    },
    async cancel(browser, page, cancelOptions = {}) {
      assertLoginPage(page, `${origin}${mountPath}`);
      return browser.submitForm(page, { form: '/interaction/', button: 'cancel', stopAt: cancelOptions.stopAt });
    },
    stop: () => closeServer(server),
    async start() {
      if (!server.listening) await listen(server, host, port);
    },
    close: () => closeServer(server),
  };
  return idp;
}

function assertLoginPage(page: Page, issuer: string): void {
  if (page.stopped || !page.url.href.startsWith(`${issuer}/interaction/`) || !page.forms.some((form) => form.action.includes('/interaction/'))) {
    throw new Error(`Expected the test IdP's login page, got ${page.toString()}`);
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > 64 * 1024) req.destroy(new Error('body too large'));
      else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Revokes `token` at the IdP's RFC 7009 endpoint, authenticated as the IdP's client: what an
 * administrator removing the app's access does. oidc-provider then ends the whole grant, so the next
 * refresh with it is refused with invalid_grant, as after the refresh token's expiry, without waiting
 * for one. `fetchFn` must trust the IdP's certificate.
 */
export async function revokeAtIdp(idp: OidcIdp, token: string, fetchFn: typeof fetch): Promise<void> {
  const discovery = (await (await fetchFn(`${idp.issuer}/.well-known/openid-configuration`)).json()) as { revocation_endpoint?: string };
  if (!discovery.revocation_endpoint) throw new Error(`${idp.issuer} advertises no revocation_endpoint`);
  // RFC 6749 §2.3.1: client_secret_basic form-encodes the id and the secret before base64.
  const basic = Buffer.from(`${encodeURIComponent(idp.clientId)}:${encodeURIComponent(idp.clientSecret)}`).toString('base64');
  const response = await fetchFn(discovery.revocation_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${basic}` },
    body: new URLSearchParams({ token, token_type_hint: 'refresh_token' }),
  });
  await response.arrayBuffer();
  // RFC 7009 §2.2 answers 200 even for an unknown token, so only a refused request is detectable here.
  if (response.status !== 200) throw new Error(`revocation at ${discovery.revocation_endpoint} answered ${response.status}`);
}
