/**
 * GitHub as the identity provider: an OAuth app, or a GitHub App signing users in (user access
 * tokens), on github.com or GitHub Enterprise Server. GitHub is OAuth 2 without OpenID Connect: no
 * discovery, no ID token, so the endpoints are fixed and the identity comes from the REST API:
 * `GET /user` (the numeric `id` is the subject: logins can be renamed and then reused by someone
 * else), `GET /user/emails` for the verified primary email, and, when policy needs them,
 * `GET /user/orgs` and `GET /user/teams` (docs/identity-providers-github.md).
 *
 * GitHub's token endpoint quirks handled here: it answers form-encoded unless asked for JSON, and it
 * reports errors with HTTP 200 and an `error` field. Refresh tokens exist only when expiring user
 * tokens are on (always for GitHub Apps, opt-in for OAuth apps).
 */
import { createHash } from 'node:crypto';
import { reservedParamProblems } from '../config/schema/identity-provider-rules.ts';
import type { GithubProviderConfig } from '../config/schema/providers-oauth2.ts';
import type { GatewayConfig, IdentityProviderConfig } from '../config/schema.ts';
import { type Clock, epochSeconds, systemClock } from '../core/clock.ts';
import type { Logger } from '../observability/logger.ts';
import { refuseProblems } from './config-error.ts';
import type { ApiResponse, TokenErrorBody } from './oauth2-http.ts';
import { apiFailure, callbackError, codeFromCallback, getJson, idpTokensFrom, requestTokens } from './oauth2-http.ts';
import type { IdentityProvider, IdpIdentity, IdpLoginResult, IdpLoginState, IdpTokens } from './types.ts';
import { IdpLoginError } from './types.ts';

export interface GithubIdentityProviderOptions {
  /** Outbound fetch (see `createOutboundFetch`): trusts the extra CA and has its own deadline. */
  fetch?: typeof fetch;
  /** For operator-facing problems (wrong client secret, missing permission) beyond the login log line. */
  logger?: Logger;
  /** Stamps `expiresAt` from the IdP's `expires_in` (the gateway's clock; the system clock by default). */
  clock?: Clock;
}

/** Pages of 100 (GitHub's maximum); more than this many pages of orgs or teams is not a real account. */
const PER_PAGE = 100;
const MAX_PAGES = 20;
const GITHUB_COM = 'https://github.com';
const API_HEADERS = { accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28' };

export class GithubIdentityProvider implements IdentityProvider {
  readonly id: string;
  readonly displayName: string;
  readonly #config: GithubProviderConfig;
  readonly #fetch: typeof fetch;
  readonly #logger: Logger | undefined;
  readonly #clock: Clock;
  readonly #webUrl: string;
  readonly #apiUrl: string;
  readonly #scopes: string[];
  readonly #fetchOrganizations: boolean;

  constructor(config: GithubProviderConfig, options: GithubIdentityProviderOptions = {}) {
    this.id = config.id;
    this.displayName = config.displayName;
    this.#config = config;
    refuseProblems(config.id, reservedParamProblems(config.authorizationParams));
    this.#fetch = options.fetch ?? fetch;
    this.#logger = options.logger;
    this.#clock = options.clock ?? systemClock;
    const endpoints = githubEndpoints(config);
    this.#webUrl = endpoints.webUrl;
    this.#apiUrl = endpoints.apiUrl;
    this.#fetchOrganizations = config.fetchOrganizations ?? false;
    this.#scopes = config.scopes ?? ['read:user', 'user:email', ...(this.#fetchOrganizations ? ['read:org'] : [])];
  }

  /** Where the token and API calls go (for start-up logs and tests). */
  get endpoints(): { authorizationUrl: string; tokenUrl: string; apiUrl: string } {
    return { authorizationUrl: `${this.#webUrl}/login/oauth/authorize`, tokenUrl: `${this.#webUrl}/login/oauth/access_token`, apiUrl: this.#apiUrl };
  }

  async authorizationUrl(login: IdpLoginState, callbackUrl: string): Promise<URL> {
    const url = new URL(this.endpoints.authorizationUrl);
    for (const [key, value] of Object.entries(this.#config.authorizationParams)) url.searchParams.set(key, value);
    url.searchParams.set('client_id', this.#config.clientId);
    url.searchParams.set('redirect_uri', callbackUrl);
    url.searchParams.set('scope', this.#scopes.join(' '));
    url.searchParams.set('state', login.state);
    // GitHub accepts PKCE S256 on both OAuth apps and GitHub Apps; RFC 9700 §2.1.1 wants it even for
    // confidential clients.
    url.searchParams.set('code_challenge', createHash('sha256').update(login.codeVerifier).digest('base64url'));
    url.searchParams.set('code_challenge_method', 'S256');
    return url;
  }

  async completeLogin(callbackUrl: URL, login: IdpLoginState, expectedCallbackUrl: string): Promise<IdpLoginResult> {
    const params = callbackUrl.searchParams;
    if (params.has('error')) throw callbackError(params, 'GitHub', (error) => this.#explainCallbackError(error, expectedCallbackUrl));
    const code = codeFromCallback(params, login.state, 'GitHub');
    const response = await requestTokens({
      fetch: this.#fetch,
      url: this.endpoints.tokenUrl,
      params: { grant_type: 'authorization_code', code, redirect_uri: expectedCallbackUrl, code_verifier: login.codeVerifier },
      clientId: this.#config.clientId,
      clientSecret: this.#config.clientSecret,
      // GitHub documents client_id and client_secret as body parameters.
      authMethod: 'client_secret_post',
      label: 'GitHub',
      classify: (error, detail) => this.#classifyTokenError(error, detail, 'code exchange', expectedCallbackUrl),
    });
    const identity = await this.#identity(response.access_token);
    return { identity, tokens: idpTokensFrom(response, epochSeconds(this.#clock)) };
  }

  async refresh(tokens: IdpTokens): Promise<IdpTokens> {
    if (!tokens.refreshToken) {
      throw new IdpLoginError('access_denied', 'Sign in again.', 'no GitHub refresh token is stored (expiring user tokens are off)');
    }
    const response = await requestTokens({
      fetch: this.#fetch,
      url: this.endpoints.tokenUrl,
      params: { grant_type: 'refresh_token', refresh_token: tokens.refreshToken },
      clientId: this.#config.clientId,
      clientSecret: this.#config.clientSecret,
      authMethod: 'client_secret_post',
      label: 'GitHub',
      classify: (error, detail) => this.#classifyTokenError(error, detail, 'refresh'),
    });
    // GitHub rotates the refresh token on every use: the new one replaces the old.
    return idpTokensFrom(response, epochSeconds(this.#clock));
  }

  /** The user behind an access token: `/user`, `/user/emails`, and orgs and teams when configured. */
  async #identity(accessToken: string): Promise<IdpIdentity> {
    const userResponse = await this.#api('/user', accessToken);
    if (userResponse.status !== 200) throw apiFailure(userResponse, 'GitHub GET /user');
    const user = userResponse.json as { id?: unknown; login?: unknown; name?: unknown } | undefined;
    const id = user?.id;
    // The numeric id never changes; a login can be renamed and later taken by someone else.
    const subject = typeof id === 'number' && Number.isSafeInteger(id) && id > 0 ? String(id) : typeof id === 'string' && /^\d+$/.test(id) ? id : undefined;
    if (!subject)
      throw new IdpLoginError('server_error', "The identity provider's user information could not be read.", 'GitHub GET /user answered without a numeric id');

    const identity: IdpIdentity = { subject, groups: [] };
    const name = typeof user?.name === 'string' && user.name.trim() !== '' ? user.name : typeof user?.login === 'string' ? user.login : undefined;
    if (name) identity.name = name;
    const email = await this.#verifiedPrimaryEmail(accessToken);
    if (email) {
      identity.email = email;
      identity.emailVerified = true;
    }
    if (this.#fetchOrganizations) {
      const [organizations, teams] = await Promise.all([this.#organizations(accessToken), this.#teams(accessToken)]);
      identity.organizations = organizations;
      identity.teams = teams;
    }
    return identity;
  }

  /**
   * The primary email, only when GitHub has verified it: an unverified address proves nothing, and
   * `/user`'s public `email` may be any address the user typed. A token without `user:email` (or a
   * GitHub App without the "Email addresses" permission) yields no email rather than a failed login.
   */
  async #verifiedPrimaryEmail(accessToken: string): Promise<string | undefined> {
    const response = await this.#api(`/user/emails?per_page=${PER_PAGE}`, accessToken);
    if (response.status === 403 || response.status === 404) {
      if (response.headers.get('x-ratelimit-remaining') === '0') throw apiFailure(response, 'GitHub GET /user/emails');
      this.#logger?.warn(
        { event: 'idp.github.email_unavailable', provider: this.id, status: response.status, tokenScopes: response.headers.get('x-oauth-scopes') ?? undefined },
        'GitHub did not list the user\'s emails: grant the user:email scope (OAuth app) or the "Email addresses" read permission (GitHub App)',
      );
      return undefined;
    }
    if (response.status !== 200) throw apiFailure(response, 'GitHub GET /user/emails');
    if (!Array.isArray(response.json)) throw apiFailure(response, 'GitHub GET /user/emails', 'the answer is not a list');
    const primary = (response.json as unknown[]).find(
      (entry): entry is { email: string; verified: boolean } =>
        entry !== null &&
        typeof entry === 'object' &&
        (entry as { primary?: unknown }).primary === true &&
        typeof (entry as { email?: unknown }).email === 'string',
    );
    return primary?.verified === true ? primary.email : undefined;
  }

  async #organizations(accessToken: string): Promise<string[]> {
    const items = await this.#list('/user/orgs', accessToken);
    return items.flatMap((org) => (typeof org.login === 'string' ? [org.login] : []));
  }

  async #teams(accessToken: string): Promise<string[]> {
    const items = await this.#list('/user/teams', accessToken);
    return items.flatMap((team) => {
      const org = (team.organization as { login?: unknown } | undefined)?.login;
      return typeof team.slug === 'string' && typeof org === 'string' ? [`${org}/${team.slug}`] : [];
    });
  }

  /** Every page of a list endpoint, following `Link: rel="next"` on the API's own origin only. */
  async #list(path: string, accessToken: string): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    let url: string | undefined = `${this.#apiUrl}${path}?per_page=${PER_PAGE}`;
    for (let page = 0; url && page < MAX_PAGES; page++) {
      const response = await getJson(this.#fetch, url, accessToken, `GitHub GET ${path}`, API_HEADERS);
      if (response.status !== 200 || !Array.isArray(response.json)) {
        const hint =
          response.status === 403 || response.status === 404
            ? `organisation membership needs the read:org scope (OAuth app; token has "${response.headers.get('x-oauth-scopes') ?? 'unknown'}") or the "Members" organisation read permission (GitHub App)`
            : '';
        if (hint) this.#logger?.error({ event: 'idp.github.orgs_unavailable', provider: this.id, status: response.status }, `GitHub refused ${path}: ${hint}`);
        throw apiFailure(response, `GitHub GET ${path}`, hint);
      }
      items.push(...(response.json as unknown[]).filter((item): item is Record<string, unknown> => item !== null && typeof item === 'object'));
      url = this.#nextPage(response);
    }
    return items;
  }

  #nextPage(response: ApiResponse): string | undefined {
    const link = response.headers.get('link');
    const next = link
      ?.split(',')
      .map((part) => /<([^>]+)>\s*;\s*rel="?next"?/.exec(part)?.[1])
      .find(Boolean);
    if (!next) return undefined;
    const url = URL.parse(next, this.#apiUrl);
    // The bearer token follows the link: never to another origin.
    return url && url.origin === new URL(this.#apiUrl).origin ? url.href : undefined;
  }

  #api(path: string, accessToken: string): Promise<ApiResponse> {
    return getJson(this.#fetch, `${this.#apiUrl}${path}`, accessToken, `GitHub GET ${path.split('?')[0]}`, API_HEADERS);
  }

  /**
   * GitHub's token endpoint errors (docs: "Troubleshooting OAuth app access token request errors"),
   * all sent with HTTP 200.
   */
  #classifyTokenError(error: TokenErrorBody, detail: string, step: 'code exchange' | 'refresh', callbackUrl?: string): IdpLoginError | undefined {
    switch (error.error) {
      case 'incorrect_client_credentials':
        this.#logger?.error(
          { event: 'idp.misconfigured', provider: this.id, error: error.error },
          `GitHub rejected the client credentials: check identityProviders "${this.id}" clientId and clientSecret against the app's settings on GitHub`,
        );
        return new IdpLoginError(
          'server_error',
          "The identity provider refused the gateway's credentials.",
          `${detail}: clientId/clientSecret of provider "${this.id}" are wrong`,
        );
      case 'redirect_uri_mismatch':
        return new IdpLoginError(
          'server_error',
          'The identity provider refused the sign-in request.',
          `${detail}: register ${callbackUrl ?? '<publicUrl>/callback'} as the app's callback URL`,
        );
      case 'bad_verification_code':
        // Expired (codes live 10 minutes), used twice, or issued to another app: not the user's refusal.
        return new IdpLoginError('server_error', 'The sign-in expired or was already used. Start it again.', detail);
      case 'unverified_user_email':
        return new IdpLoginError('access_denied', 'Verify your primary email address on GitHub, then sign in again.', detail);
      case 'bad_refresh_token':
        // Expired (6 months), revoked or already rotated: only a new login helps.
        return step === 'refresh' ? new IdpLoginError('access_denied', 'Sign in again.', detail) : undefined;
      default:
        return undefined;
    }
  }

  #explainCallbackError(error: string, callbackUrl: string): string | undefined {
    if (error === 'redirect_uri_mismatch') return `register ${callbackUrl} as the app's callback URL`;
    if (error === 'application_suspended') return 'the GitHub app is suspended';
    return undefined;
  }
}

/** The web and API base URLs: github.com's API lives on another host, GHES's under `/api/v3`. */
export function githubEndpoints(config: Pick<GithubProviderConfig, 'baseUrl' | 'apiUrl'>): { webUrl: string; apiUrl: string } {
  const webUrl = config.baseUrl.replace(/\/+$/, '');
  const apiUrl = (config.apiUrl ?? (webUrl === GITHUB_COM ? 'https://api.github.com' : `${webUrl}/api/v3`)).replace(/\/+$/, '');
  return { webUrl, apiUrl };
}

/**
 * Resolves `fetchOrganizations` left unset: on when any access rule (gateway-wide or per server)
 * names GitHub organisations or teams, since those rules can only pass with the membership read.
 * Meant to be applied to the providers before they are built.
 */
export function withGithubOrganizationDefaults(
  providers: readonly IdentityProviderConfig[],
  config: Pick<GatewayConfig, 'access' | 'servers'>,
): IdentityProviderConfig[] {
  const rules = [config.access, ...(config.servers ?? []).map((server) => server.access)];
  const needed = rules.some((rule) => rule.githubOrgs.length > 0 || rule.githubTeams.length > 0);
  return providers.map((provider) =>
    provider.type === 'github' && provider.fetchOrganizations === undefined ? { ...provider, fetchOrganizations: needed } : provider,
  );
}
