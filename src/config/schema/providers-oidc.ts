/**
 * OpenID Connect identity providers: the generic `oidc` type and one preset per IdP that bends OIDC its
 * own way (docs/identity-providers.md). A preset takes the few keys its IdP's admin console shows (tenant, realm,
 * domain, user pool...) and derives the issuer, scopes, parameters and claim mapping from them; the
 * derivation lives in src/idp/presets/, the keys here.
 */
import { z } from 'zod';
import { secureUrl } from './urls.ts';

const baseUrl = secureUrl({ query: false });

const providerId = (fallback: string) =>
  z
    .string()
    .regex(/^[a-z0-9-]+$/)
    .default(fallback)
    .describe('Identifier of this provider (lowercase letters, digits, dashes); it prefixes user ids (`<id>:<subject>`), so changing it makes every user new.');

const claimName = z.string().min(1);

/**
 * Which claims of the ID token (merged with userinfo) give the identity. Each preset has its own
 * defaults (src/idp/presets/); a key set here replaces that default.
 */
const claimsMapping = z
  .object({
    subject: claimName
      .optional()
      .describe('Claim with the stable user id (namespaced as `<provider id>:<value>`). Never an email or a name: those can be reassigned.'),
    email: claimName.optional().describe('Claim with the email address.'),
    emailVerified: claimName
      .optional()
      .describe('Claim saying the email is verified (a boolean, or "true"/"false"). Email and domain access rules only trust a verified email.'),
    name: claimName.optional().describe('Claim with the display name.'),
    groups: z
      .union([claimName, z.array(claimName)])
      .optional()
      .describe("Claim (or claims, merged) with the user's groups or roles, as an array of strings."),
  })
  .default({})
  .describe('Which claims give the user id, email, name and groups. Defaults depend on `type`.');

/** Keys every OIDC-based provider has. */
const commonKeys = {
  clientId: z.string().min(1).describe("Client (application) ID of the gateway's registration at the IdP."),
  clientSecret: z
    .string()
    .min(1)
    .optional()
    .describe('Client secret of that registration; omit for a public client. Prefer `${file:/run/secrets/...}` or the `_FILE` variable to writing it here.'),
  authorizationParams: z
    .record(z.string(), z.string())
    .default({})
    .describe(
      "Extra parameters sent on the upstream authorization request (for example `prompt`, `login_hint`, `domain_hint`). The gateway's own parameters (client_id, redirect_uri, scope, state, nonce, PKCE) cannot be replaced.",
    ),
  claims: claimsMapping,
  clockTolerance: z
    .number()
    .int()
    .min(0)
    .max(600)
    .default(30)
    .describe('Seconds of clock difference tolerated when checking ID token times (`exp`, `iat`, `nbf`).'),
};

const scopes = (fallback: string[], extra = '') => z.array(z.string().min(1)).default(fallback).describe(`Scopes requested from the IdP.${extra}`);

export const oidcProviderSchema = z.object({
  type: z.literal('oidc').describe('Any OpenID Connect provider, found by its issuer (discovery).'),
  id: providerId('oidc'),
  displayName: z.string().default('Single sign-on').describe('Name shown to users.'),
  issuer: baseUrl.describe('Issuer URL of the IdP (https); its discovery document is read from `<issuer>/.well-known/openid-configuration`.'),
  scopes: scopes(['openid', 'email', 'profile', 'offline_access']),
  ...commonKeys,
});

const TENANT = /^(common|organizations|consumers|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[a-z0-9][a-z0-9.-]*\.[a-z]{2,})$/i;

export const entraProviderSchema = z.object({
  type: z.literal('entra').describe('Microsoft Entra ID (Azure AD), work and school accounts.'),
  id: providerId('entra'),
  displayName: z.string().default('Microsoft').describe('Name shown to users.'),
  tenant: z
    .string()
    .regex(TENANT, 'a tenant id (GUID), a verified domain such as contoso.onmicrosoft.com, or common/organizations/consumers')
    .describe(
      'Directory (tenant) ID, or a verified domain, for a single-tenant app; `organizations` (any work account) or `common` for a multi-tenant app, which then needs `allowedTenants`.',
    ),
  allowedTenants: z
    .array(z.string().min(1))
    .default([])
    .describe(
      'Tenant ids (`tid`) whose users may sign in. Required with `common`/`organizations`; `["*"]` accepts every tenant (then restrict with `access.tenants`). With a single tenant, it defaults to that tenant.',
    ),
  scopes: scopes(
    ['openid', 'profile', 'email', 'offline_access'],
    " Besides `openid profile email offline_access`, at most one API's scopes, fully qualified: `api://<app id>/<scope>` or `<resource>/.default` (an unqualified scope would mean Microsoft Graph). Never a `resource` parameter: Entra refuses it together with `scope` (AADSTS9010010).",
  ),
  authority: baseUrl
    .default('https://login.microsoftonline.com')
    .describe('Sign-in host: `https://login.microsoftonline.com`, or a national cloud such as `https://login.microsoftonline.us`.'),
  graphGroups: z
    .boolean()
    .default(false)
    .describe(
      "When the ID token says the user has too many groups to list (groups overage), read them from Microsoft Graph (`/me/transitiveMemberOf`) with the user's access token. Needs the `GroupMember.Read.All` delegated permission, and scopes for Graph (no `api://` scope).",
    ),
  graphUrl: baseUrl.default('https://graph.microsoft.com').describe('Microsoft Graph base URL (national clouds: `https://graph.microsoft.us`, ...).'),
  ...commonKeys,
});

export const googleProviderSchema = z.object({
  type: z.literal('google').describe('Google accounts and Google Workspace.'),
  id: providerId('google'),
  displayName: z.string().default('Google').describe('Name shown to users.'),
  hostedDomain: z
    .string()
    .optional()
    .describe(
      "Google Workspace domain (such as `example.com`): only accounts of that Workspace may sign in (their ID token's `hd` claim is checked; the `hd` parameter is only a hint to the account chooser).",
    ),
  scopes: scopes(['openid', 'email', 'profile'], ' A refresh token is asked for with `access_type=offline` and `prompt=consent`, not a scope.'),
  issuer: baseUrl.default('https://accounts.google.com').describe('Issuer; change only for a test stand-in.'),
  ...commonKeys,
});

export const oktaProviderSchema = z.object({
  type: z.literal('okta').describe('Okta (org or custom authorization server).'),
  id: providerId('okta'),
  displayName: z.string().default('Okta').describe('Name shown to users.'),
  issuer: baseUrl.describe('Issuer of the authorization server: `https://<org>.okta.com/oauth2/default` (custom) or `https://<org>.okta.com` (org).'),
  scopes: scopes(
    ['openid', 'profile', 'email', 'offline_access'],
    ' Refresh tokens need `offline_access` and the Refresh Token grant enabled on the app. Add `groups` on the org server for the groups claim.',
  ),
  ...commonKeys,
});

export const keycloakProviderSchema = z.object({
  type: z.literal('keycloak').describe('Keycloak (and Red Hat build of Keycloak).'),
  id: providerId('keycloak'),
  displayName: z.string().default('Keycloak').describe('Name shown to users.'),
  baseUrl: baseUrl.describe('Keycloak base URL, such as `https://sso.example.com` (add `/auth` for Keycloak before version 17).'),
  realm: z.string().min(1).describe('Realm name; the issuer is `<baseUrl>/realms/<realm>`.'),
  scopes: scopes(['openid', 'profile', 'email', 'offline_access']),
  ...commonKeys,
});

export const auth0ProviderSchema = z.object({
  type: z.literal('auth0').describe('Auth0.'),
  id: providerId('auth0'),
  displayName: z.string().default('Auth0').describe('Name shown to users.'),
  domain: z
    .string()
    .regex(/^[a-z0-9.-]+(:\d+)?$/i, 'a host name such as example.eu.auth0.com')
    .optional()
    .describe('Tenant domain or custom domain, such as `example.eu.auth0.com`; the issuer is `https://<domain>/` (with the trailing slash).'),
  issuer: baseUrl.optional().describe('Issuer, instead of `domain` (a test stand-in); keep the trailing slash.'),
  audience: z.string().optional().describe('API identifier sent as `audience`, so the access token is a JWT for that API rather than an opaque token.'),
  scopes: scopes(['openid', 'profile', 'email', 'offline_access'], ' Refresh tokens need `offline_access` and "Allow Offline Access" on the API.'),
  ...commonKeys,
});

export const authentikProviderSchema = z.object({
  type: z.literal('authentik').describe('authentik.'),
  id: providerId('authentik'),
  displayName: z.string().default('authentik').describe('Name shown to users.'),
  baseUrl: baseUrl.describe('authentik base URL, such as `https://auth.example.com`.'),
  slug: z
    .string()
    .regex(/^[a-z0-9_-]+$/i)
    .describe('Application slug; the issuer is `<baseUrl>/application/o/<slug>/`.'),
  scopes: scopes(['openid', 'profile', 'email', 'offline_access']),
  ...commonKeys,
});

export const cognitoProviderSchema = z.object({
  type: z.literal('cognito').describe('Amazon Cognito user pools.'),
  id: providerId('cognito'),
  displayName: z.string().default('Amazon Cognito').describe('Name shown to users.'),
  region: z
    .string()
    .regex(/^[a-z]{2}(-[a-z]+)+-\d$/)
    .optional()
    .describe('AWS region of the user pool, such as `eu-west-1`.'),
  userPoolId: z
    .string()
    .regex(/^[a-z]{2}(-[a-z]+)+-\d_[A-Za-z0-9]+$/)
    .optional()
    .describe('User pool id, such as `eu-west-1_AbCdEf123`; with `region`, gives the issuer `https://cognito-idp.<region>.amazonaws.com/<userPoolId>`.'),
  issuer: baseUrl.optional().describe('Issuer, instead of `region` + `userPoolId`.'),
  scopes: scopes(['openid', 'email', 'profile'], ' Cognito issues a refresh token with every code grant; `offline_access` is not a Cognito scope.'),
  ...commonKeys,
});

export type OidcProviderConfig = z.output<typeof oidcProviderSchema>;
export type EntraProviderConfig = z.output<typeof entraProviderSchema>;
export type GoogleProviderConfig = z.output<typeof googleProviderSchema>;
export type OktaProviderConfig = z.output<typeof oktaProviderSchema>;
export type KeycloakProviderConfig = z.output<typeof keycloakProviderSchema>;
export type Auth0ProviderConfig = z.output<typeof auth0ProviderSchema>;
export type AuthentikProviderConfig = z.output<typeof authentikProviderSchema>;
export type CognitoProviderConfig = z.output<typeof cognitoProviderSchema>;
export type ClaimsMappingConfig = z.output<typeof claimsMapping>;
export type OidcFamilyConfig =
  | OidcProviderConfig
  | EntraProviderConfig
  | GoogleProviderConfig
  | OktaProviderConfig
  | KeycloakProviderConfig
  | Auth0ProviderConfig
  | AuthentikProviderConfig
  | CognitoProviderConfig;
