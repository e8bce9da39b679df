/**
 * Rules on one `identityProviders[]` entry that span several of its keys or encode an IdP's own
 * limits. They are pure functions of the entry so that the schema (and with it `config check`) and
 * the provider classes that re-check their input when built apply the very same rule: a configuration
 * `config check` accepts is one `serve` starts with.
 *
 * Every function takes data the schema may not have validated yet (the schema runs them even when
 * other keys are wrong, to list every problem at once), so each guards the types it reads.
 */
import { secureUrlProblems } from './urls.ts';

export type RulePath = (string | number)[];

/** One broken rule; `path` is relative to the provider entry, `message` reads after the key path. */
export interface RuleProblem {
  path: RulePath;
  message: string;
}

/**
 * Authorization request parameters the gateway sets itself. An operator's `authorizationParams` may not
 * replace them: they carry the flow's security (RFC 9700 §2.1.1: PKCE, state, nonce) or its shape (a
 * GET callback with a code at the gateway's redirect URI, RFC 6749 §4.1.1).
 */
export const RESERVED_AUTHORIZATION_PARAMS: ReadonlySet<string> = new Set([
  'client_id',
  'redirect_uri',
  'response_type',
  'response_mode',
  'scope',
  'state',
  'nonce',
  'code_challenge',
  'code_challenge_method',
  'request',
  'request_uri',
]);

/** The provider types served by the one OpenID Connect implementation. */
export const OIDC_PROVIDER_TYPES: ReadonlySet<string> = new Set(['oidc', 'entra', 'google', 'okta', 'keycloak', 'auth0', 'authentik', 'cognito']);

export function reservedParamProblems(params: unknown): RuleProblem[] {
  if (!isRecord(params)) return [];
  return Object.keys(params)
    .filter((key) => RESERVED_AUTHORIZATION_PARAMS.has(key))
    .map((key) => ({ path: ['authorizationParams', key], message: 'is set by the gateway itself and cannot be configured' }));
}

/** OIDC Core §3.1.2.1: without `openid` the request is plain OAuth and no ID token (the identity) comes back. */
export function openidScopeProblems(scopes: unknown): RuleProblem[] {
  if (!Array.isArray(scopes) || scopes.includes('openid')) return [];
  return [{ path: ['scopes'], message: 'must include "openid": the identity comes from the ID token' }];
}

/**
 * The issuer is fetched from (discovery) and trusted for keys, so it is https like every other IdP URL.
 * The schema applies the same rule to every issuer and base URL key (`secureUrl`); providers built
 * from settings rather than parsed configuration call this.
 */
export function issuerProblems(issuer: unknown, key = 'issuer'): RuleProblem[] {
  if (typeof issuer !== 'string') return [];
  return secureUrlProblems(issuer, { query: false }).map((message) => ({ path: [key], message }));
}

// ---------------------------------------------------------------------------------------------------
// Microsoft Entra ID

const ENTRA_MULTI_TENANT = new Set(['common', 'organizations', 'consumers']);
const ENTRA_OIDC_SCOPES = new Set(['openid', 'profile', 'email', 'offline_access']);

/** The resource an Entra scope is for: `api://app/x` → `api://app`; `https://graph.microsoft.com/.default` → that origin. */
export function entraScopeResource(scope: string): string | undefined {
  const slash = scope.lastIndexOf('/');
  if (slash <= 0) return undefined;
  return scope.slice(0, slash);
}

/** Scope, parameter and tenant rules Entra enforces at request time (or not at all), checked up front. */
export function entraProblems(config: Record<string, unknown>): RuleProblem[] {
  const problems: RuleProblem[] = [];
  const resources = new Set<string>();
  if (Array.isArray(config.scopes)) {
    config.scopes.forEach((scope: unknown, index) => {
      if (typeof scope !== 'string' || ENTRA_OIDC_SCOPES.has(scope)) return;
      const resource = entraScopeResource(scope);
      if (resource) resources.add(resource.toLowerCase());
      else
        problems.push({
          path: ['scopes', index],
          message: `"${scope}" is unqualified, which Entra reads as Microsoft Graph: write "api://<app id>/${scope}", "<resource>/.default", or "https://graph.microsoft.com/${scope}"`,
        });
    });
  }
  if (resources.size > 1) {
    problems.push({
      path: ['scopes'],
      message: `name several resources (${[...resources].join(', ')}); Entra issues a token for one resource per request (AADSTS28000)`,
    });
  }
  if (isRecord(config.authorizationParams) && 'resource' in config.authorizationParams) {
    problems.push({
      path: ['authorizationParams', 'resource'],
      message: 'Entra v2.0 refuses `resource` together with `scope` (AADSTS9010010); put the API in scopes as "<resource>/.default"',
    });
  }
  const allowedTenants = Array.isArray(config.allowedTenants) ? config.allowedTenants : [];
  if (typeof config.tenant === 'string' && ENTRA_MULTI_TENANT.has(config.tenant.toLowerCase()) && allowedTenants.length === 0) {
    // Without a tenant list, anyone with any work (or personal) account could sign in.
    problems.push({
      path: ['allowedTenants'],
      message: `is required with tenant "${config.tenant}", which accepts accounts of every Entra tenant: list the tenant ids allowed, or ["*"] to allow all and restrict with access.tenants`,
    });
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------------
// Presets whose issuer comes from one of two sets of keys

export function auth0Problems(config: Record<string, unknown>): RuleProblem[] {
  if (config.issuer !== undefined && config.domain !== undefined) return [{ path: ['issuer'], message: 'set either domain or issuer, not both' }];
  if (config.issuer === undefined && config.domain === undefined)
    return [{ path: ['domain'], message: 'is required (such as example.eu.auth0.com), unless issuer is set' }];
  return [];
}

export function cognitoProblems(config: Record<string, unknown>): RuleProblem[] {
  if (config.issuer !== undefined) return [];
  const { region, userPoolId } = config;
  if (region === undefined || userPoolId === undefined) {
    return [{ path: [region === undefined ? 'region' : 'userPoolId'], message: 'is required: cognito needs region and userPoolId (or issuer)' }];
  }
  // A pool id starts with its region (`eu-west-1_AbC123`); any other pairing names an issuer that does not exist.
  if (typeof region === 'string' && typeof userPoolId === 'string' && !userPoolId.startsWith(`${region}_`)) {
    return [{ path: ['userPoolId'], message: `is not in region ${region}` }];
  }
  return [];
}

// ---------------------------------------------------------------------------------------------------
// Generic OAuth 2

const TOKEN_ENDPOINT_AUTH_METHODS = new Set(['client_secret_basic', 'client_secret_post', 'none']);

/** How the gateway authenticates at the token endpoint when `tokenEndpointAuthMethod` is left out. */
export function oauth2AuthMethod(config: { tokenEndpointAuthMethod?: unknown; clientSecret?: unknown }): string {
  if (typeof config.tokenEndpointAuthMethod === 'string') return config.tokenEndpointAuthMethod;
  return config.clientSecret ? 'client_secret_basic' : 'none';
}

export function oauth2ClientProblems(config: Record<string, unknown>): RuleProblem[] {
  const method = oauth2AuthMethod(config);
  if (!TOKEN_ENDPOINT_AUTH_METHODS.has(method)) return []; // the enum itself reports it
  if (method !== 'none' && !config.clientSecret) {
    return [{ path: ['clientSecret'], message: `is required with tokenEndpointAuthMethod ${method}` }];
  }
  if (method === 'none' && config.pkce === false) {
    // A public client without PKCE has nothing binding the code to the gateway (RFC 9700 §2.1.1).
    return [{ path: ['pkce'], message: 'must stay on for a public client (tokenEndpointAuthMethod none)' }];
  }
  return [];
}

// ---------------------------------------------------------------------------------------------------

/** Every rule above that applies to one provider entry, by its `type`. */
export function identityProviderProblems(provider: unknown): RuleProblem[] {
  if (!isRecord(provider)) return [];
  const type = provider.type;
  if (typeof type !== 'string') return [];
  const problems: RuleProblem[] = [];
  if (type !== 'local') problems.push(...reservedParamProblems(provider.authorizationParams));
  if (OIDC_PROVIDER_TYPES.has(type)) problems.push(...openidScopeProblems(provider.scopes));
  if (type === 'entra') problems.push(...entraProblems(provider));
  if (type === 'auth0') problems.push(...auth0Problems(provider));
  if (type === 'cognito') problems.push(...cognitoProblems(provider));
  if (type === 'oauth2') problems.push(...oauth2ClientProblems(provider));
  return problems;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
