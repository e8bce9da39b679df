/**
 * Stand-ins for the identity providers the gateway has presets for: each is the real oidc-provider of
 * ./oidc-idp.ts, shaped and bent the way that IdP is (docs/identity-providers.md), so the presets are tested
 * against the behaviour they exist for, not against a textbook server.
 *
 * - Entra: issuer `https://127.0.0.1:<port>/<tid>/v2.0`; `/common/v2.0` and `/organizations/v2.0`
 *   serve a discovery document naming the template `…/{tenantid}/v2.0` and route to the tenant. No
 *   RFC 9207 `iss` in authorization responses and no `code_challenge_methods_supported` (as Entra).
 *   `resource` together with `scope` is refused (AADSTS9010010). ID tokens carry `tid`, `oid`, `groups`,
 *   `roles`, and for users with `overage` the `_claim_names` marker instead of `groups`; a Graph
 *   stand-in at `/graph/v1.0/me/transitiveMemberOf/microsoft.graph.group` lists them (2 per page).
 * - Google: a refresh token only with `access_type=offline` and `prompt=consent`; `hd` claim.
 * - Okta (`/oauth2/default`), Keycloak (`/realms/<realm>`), Auth0 (`https://host/`, trailing slash,
 *   `audience` recorded), authentik (`/application/o/<slug>/`), Cognito (`/<region>_<id>`,
 *   `cognito:groups`, `email_verified` as a string, refresh token without `offline_access`, which it
 *   refuses as a scope).
 *
 * @example
 * const entra = await startEntraStandin({ tenantId: TID, redirectUris: [cb], users: { alice: { oid: '…' } } });
 * // gateway: { type: 'entra', tenant: 'common', allowedTenants: [TID], authority: entra.authority, ... }
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { decodeJwt, importJWK, SignJWT } from 'jose';
import { idpSigningKey, type OidcIdp, type OidcIdpOptions, startOidcIdp, type TestUser } from './oidc-idp.ts';

export const STANDIN_CLIENT_ID = 'gateway-app';
export const STANDIN_CLIENT_SECRET = 'standin-client-secret-0123456789';

export interface StandinOptions {
  redirectUris: string[];
  users: Record<string, TestUser>;
  clientId?: string;
  clientSecret?: string;
  ttl?: OidcIdpOptions['ttl'];
}

function base(options: StandinOptions): Pick<OidcIdpOptions, 'clientId' | 'clientSecret' | 'redirectUris' | 'users' | 'ttl'> {
  return {
    clientId: options.clientId ?? STANDIN_CLIENT_ID,
    clientSecret: options.clientSecret ?? STANDIN_CLIENT_SECRET,
    redirectUris: options.redirectUris,
    users: options.users,
    ttl: options.ttl,
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

/** Redirects the browser back to the client with an OAuth error, as an IdP does for a bad request. */
function redirectError(res: ServerResponse, query: URLSearchParams, error: string, description: string): void {
  const target = new URL(query.get('redirect_uri') ?? 'about:blank');
  target.searchParams.set('error', error);
  target.searchParams.set('error_description', description);
  const state = query.get('state');
  if (state) target.searchParams.set('state', state);
  res.writeHead(302, { location: target.href }).end();
}

// ---------------------------------------------------------------------------------------------- Entra

export interface EntraUser extends TestUser {
  /** Object id; default a fresh GUID per user. */
  oid?: string;
  roles?: string[];
  /** The user is in too many groups: the ID token has the overage marker, Graph lists `groups`. */
  overage?: boolean;
}

export interface EntraStandin {
  idp: OidcIdp;
  tenantId: string;
  /** The sign-in host, to configure as `authority`. */
  authority: string;
  /** The Graph stand-in's base URL, to configure as `graphUrl`. */
  graphUrl: string;
  /** Authorization header values Graph received (to check the user's token was used). */
  graphRequests: string[];
  /** Answer Graph with this status instead (undefined: normal). */
  graphStatus: number | undefined;
}

/**
 * `apiScopes`: the API scopes the app registration exposes (default `api://mcp-gateway/access`);
 * granted like Entra grants a consented API permission, and kept across refreshes.
 */
export async function startEntraStandin(
  options: StandinOptions & { tenantId: string; users: Record<string, EntraUser>; apiScopes?: string[] },
): Promise<EntraStandin> {
  const tid = options.tenantId;
  const users: Record<string, TestUser> = {};
  const graphGroups = new Map<string, string[]>();
  for (const [username, user] of Object.entries(options.users)) {
    const { overage, groups, ...rest } = user;
    const oid = user.oid ?? randomUUID();
    const claims: TestUser = { ...rest, oid, tid };
    if (overage) {
      // Entra's code-flow overage marker: no `groups`, a pointer to where they can be read instead.
      claims._claim_names = { groups: 'src1' };
      claims._claim_sources = { src1: { endpoint: `https://graph.windows.net/${tid}/users/${oid}/getMemberObjects` } };
      graphGroups.set(user.sub ?? username, groups ?? []);
    } else if (groups) {
      claims.groups = groups;
    }
    users[username] = claims;
  }
  const graphRequests: string[] = [];
  const standin = { graphStatus: undefined as number | undefined };
  let origin = '';
  let idp: OidcIdp | undefined;

  const discovery = (issuer: string, segment: string) => ({
    issuer,
    authorization_endpoint: `${origin}/${segment}/v2.0/auth`,
    token_endpoint: `${origin}/${segment}/v2.0/token`,
    jwks_uri: `${origin}/${tid}/v2.0/jwks`,
    userinfo_endpoint: `${origin}/${tid}/v2.0/me`,
    response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
    response_modes_supported: ['query', 'fragment', 'form_post'],
    subject_types_supported: ['pairwise'],
    id_token_signing_alg_values_supported: ['RS256'],
    scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
    token_endpoint_auth_methods_supported: ['client_secret_basic'],
    claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'nonce', 'oid', 'tid', 'name', 'email', 'preferred_username', 'groups', 'roles'],
    tenant_region_scope: 'EU',
  });

  const intercept = (req: IncomingMessage, res: ServerResponse, url: URL): boolean => {
    const path = url.pathname;
    if (path.startsWith('/graph/')) {
      void graph(req, res, url);
      return true;
    }
    const multi = /^\/(common|organizations)\/v2\.0(\/.*)?$/.exec(path);
    const own = path.startsWith(`/${tid}/v2.0`);
    if (!multi && !own) return false;
    const rest = multi ? (multi[2] ?? '') : path.slice(`/${tid}/v2.0`.length);
    if (rest === '/.well-known/openid-configuration') {
      sendJson(res, 200, multi ? discovery(`${origin}/{tenantid}/v2.0`, multi[1]!) : discovery(`${origin}/${tid}/v2.0`, tid));
      return true;
    }
    if (rest === '/auth' && url.searchParams.has('resource') && url.searchParams.has('scope')) {
      redirectError(
        res,
        url.searchParams,
        'invalid_target',
        "AADSTS9010010: The resource parameter provided in the request doesn't match with the requested scopes.",
      );
      return true;
    }
    if (multi) req.url = `/${tid}/v2.0${rest}${url.search}`;
    // Entra sends no RFC 9207 `iss` in the authorization response: take it out of the redirect.
    const setHeader = res.setHeader.bind(res);
    res.setHeader = (name: string, value: number | string | readonly string[]) => {
      if (name.toLowerCase() === 'location' && typeof value === 'string' && value.includes('iss=')) {
        const location = URL.parse(value);
        if (location && location.origin !== origin) {
          location.searchParams.delete('iss');
          return setHeader(name, location.href);
        }
      }
      return setHeader(name, value);
    };
    return false;
  };

  /** Microsoft Graph's transitiveMemberOf, for the user the bearer access token belongs to. */
  const graph = async (req: IncomingMessage, res: ServerResponse, url: URL) => {
    const authorization = req.headers.authorization ?? '';
    graphRequests.push(authorization);
    if (standin.graphStatus) return sendJson(res, standin.graphStatus, { error: { code: 'Standin', message: 'configured failure' } });
    if (url.pathname !== '/graph/v1.0/me/transitiveMemberOf/microsoft.graph.group') return sendJson(res, 404, { error: { code: 'Request_ResourceNotFound' } });
    const token = /^Bearer (.+)$/.exec(authorization)?.[1];
    const found = token ? await idp!.provider.AccessToken.find(token) : undefined;
    if (!found) return sendJson(res, 401, { error: { code: 'InvalidAuthenticationToken', message: 'Access token is empty or invalid.' } });
    const all = graphGroups.get(found.accountId) ?? [];
    const skip = Number(url.searchParams.get('$skiptoken') ?? '0');
    const page = all.slice(skip, skip + 2);
    const body: Record<string, unknown> = { value: page.map((id) => ({ '@odata.type': '#microsoft.graph.group', id })) };
    if (skip + 2 < all.length) {
      const next = new URL(url.href);
      next.searchParams.set('$skiptoken', String(skip + 2));
      body['@odata.nextLink'] = next.href;
    }
    sendJson(res, 200, body);
  };

  idp = await startOidcIdp({
    ...base(options),
    users,
    issuerPath: `/${tid}/v2.0`,
    claims: {
      openid: ['sub', 'tid', 'oid', 'groups', 'roles', '_claim_names', '_claim_sources'],
      email: ['email'],
      profile: ['name', 'preferred_username'],
      // A claims entry makes oidc-provider know the scope, so it is granted and survives a refresh.
      ...Object.fromEntries((options.apiScopes ?? ['api://mcp-gateway/access']).map((scope) => [scope, []])),
    },
    intercept,
  });
  origin = new URL(idp.issuer).origin;
  return {
    idp,
    tenantId: tid,
    authority: origin,
    graphUrl: `${origin}/graph`,
    graphRequests,
    get graphStatus() {
      return standin.graphStatus;
    },
    set graphStatus(value) {
      standin.graphStatus = value;
    },
  };
}

// --------------------------------------------------------------------------------------------- Google

/**
 * Google: `offline_access` is not a Google scope; a refresh token comes with `access_type=offline` and
 * a consent prompt only. Here, that pair is turned into what oidc-provider (strict OIDC Core §11)
 * issues a refresh token for.
 */
export async function startGoogleStandin(options: StandinOptions): Promise<OidcIdp> {
  return startOidcIdp({
    ...base(options),
    strictOfflineAccess: true,
    tokenEndpointAuthMethod: 'client_secret_post',
    claims: { openid: ['sub', 'hd'], email: ['email', 'email_verified'], profile: ['name', 'given_name', 'family_name', 'picture'] },
    intercept(req, _res, url) {
      if (url.pathname !== '/auth') return false;
      const query = new URLSearchParams(url.searchParams);
      const scopes = (query.get('scope') ?? '').split(' ').filter((scope) => scope !== '' && scope !== 'offline_access');
      const prompts = (query.get('prompt') ?? '').split(' ');
      if (query.get('access_type') === 'offline' && prompts.includes('consent')) scopes.push('offline_access');
      query.set('scope', scopes.join(' '));
      // Google's account chooser (`select_account`) has no counterpart here: one account per browser.
      const kept = prompts.filter((prompt) => prompt !== '' && prompt !== 'select_account');
      if (kept.length > 0) query.set('prompt', kept.join(' '));
      else query.delete('prompt');
      req.url = `/auth?${query}`;
      return false;
    },
  });
}

// -------------------------------------------------------------------------- Okta, Keycloak, authentik

/** Okta with a custom authorization server (`/oauth2/default`); groups via a groups claim. */
export function startOktaStandin(options: StandinOptions): Promise<OidcIdp> {
  return startOidcIdp({ ...base(options), issuerPath: '/oauth2/default' });
}

/** Keycloak: issuer `/realms/<realm>`; a Group Membership mapper puts `groups` in the token. */
export function startKeycloakStandin(options: StandinOptions & { realm: string }): Promise<OidcIdp> {
  return startOidcIdp({ ...base(options), issuerPath: `/realms/${options.realm}` });
}

/** authentik: issuer per application, `/application/o/<slug>/` with the trailing slash. */
export function startAuthentikStandin(options: StandinOptions & { slug: string }): Promise<OidcIdp> {
  return startOidcIdp({ ...base(options), issuerPath: `/application/o/${options.slug}/`, tokenEndpointAuthMethod: 'client_secret_post' });
}

// ---------------------------------------------------------------------------------------------- Auth0

export interface Auth0Standin {
  idp: OidcIdp;
  /** The `audience` of each authorization request (undefined when absent). */
  audiences: (string | undefined)[];
}

/** Auth0: issuer `https://host/` with its trailing slash; records `audience`. */
export async function startAuth0Standin(options: StandinOptions): Promise<Auth0Standin> {
  const audiences: (string | undefined)[] = [];
  const idp = await startOidcIdp({
    ...base(options),
    issuerPath: '/',
    tokenEndpointAuthMethod: 'client_secret_post',
    intercept(_req, _res, url) {
      if (url.pathname === '/auth') audiences.push(url.searchParams.get('audience') ?? undefined);
      return false;
    },
  });
  return { idp, audiences };
}

// -------------------------------------------------------------------------------------------- Cognito

/**
 * Cognito: issuer `/<region>_<pool id>`; groups in `cognito:groups`; `email_verified` as the string
 * "true"/"false"; every code grant gets a refresh token, and `offline_access` is refused as a scope.
 */
export function startCognitoStandin(options: StandinOptions & { userPoolId: string }): Promise<OidcIdp> {
  return startOidcIdp({
    ...base(options),
    issuerPath: `/${options.userPoolId}`,
    claims: { openid: ['sub', 'cognito:groups', 'cognito:username'], email: ['email', 'email_verified'], profile: ['name'] },
    intercept(req, res, url) {
      if (!url.pathname.endsWith('/auth') || url.pathname.includes('/auth/')) return false;
      const query = new URLSearchParams(url.searchParams);
      const scopes = (query.get('scope') ?? '').split(' ');
      if (scopes.includes('offline_access')) {
        redirectError(res, query, 'invalid_scope', 'invalid_scope');
        return true;
      }
      query.set('scope', [...scopes, 'offline_access'].join(' '));
      query.set('prompt', 'consent');
      req.url = `${url.pathname}?${query}`;
      return false;
    },
  });
}

// ------------------------------------------------------------------------------- A misbehaving IdP

/**
 * An IdP whose token endpoint alters the ID token's claims (`alter` returns the new payload) and signs
 * it again with its real key: a token issued for another client, expired, from the future... for the
 * gateway's ID token checks. `alter` is switchable on the handle.
 */
export interface TamperingIdp {
  idp: OidcIdp;
  alter: ((claims: Record<string, unknown>) => Record<string, unknown>) | undefined;
}

export async function startTamperingIdp(options: StandinOptions): Promise<TamperingIdp> {
  const handle: TamperingIdp = { idp: undefined as unknown as OidcIdp, alter: undefined };
  handle.idp = await startOidcIdp({
    ...base(options),
    intercept(req, res, url) {
      if (url.pathname !== '/token' || req.method !== 'POST' || !handle.alter) return false;
      const alter = handle.alter;
      const end = res.end.bind(res) as (chunk?: unknown) => ServerResponse;
      res.end = ((chunk?: unknown) => {
        void resign(chunk, alter).then((body) => {
          if (body !== undefined) res.setHeader('content-length', Buffer.byteLength(body));
          end(body ?? chunk);
        });
        return res;
      }) as typeof res.end;
      return false;
    },
  });
  return handle;
}

async function resign(chunk: unknown, alter: (claims: Record<string, unknown>) => Record<string, unknown>): Promise<string | undefined> {
  if (chunk === undefined) return undefined;
  const text = Buffer.isBuffer(chunk) ? chunk.toString('utf8') : String(chunk);
  const body = JSON.parse(text) as { id_token?: string };
  if (!body.id_token) return undefined;
  const jwk = idpSigningKey();
  const key = await importJWK(jwk as Parameters<typeof importJWK>[0], 'RS256');
  const claims = alter(decodeJwt(body.id_token));
  body.id_token = await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: String(jwk.kid) }).sign(key);
  return JSON.stringify(body);
}
