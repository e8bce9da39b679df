/**
 * Identity providers that are OAuth 2 but not OpenID Connect: GitHub (OAuth apps and GitHub Apps, on
 * github.com or GitHub Enterprise Server) and a generic OAuth 2 provider with explicit endpoints, a
 * userinfo URL and claim mapping. Neither has discovery or ID tokens, so every endpoint is configured
 * and the identity comes from an API call made with the access token.
 */
import { z } from 'zod';
import { secureUrl } from './urls.ts';

const endpointUrl = secureUrl({ query: true });

const providerId = (fallback: string) =>
  z
    .string()
    .regex(/^[a-z0-9-]+$/)
    .default(fallback)
    .describe('Identifier of this provider (lowercase letters, digits, dashes); it prefixes user ids.');

const clientSecret = z
  .string()
  .min(1)
  .describe('Client secret of that registration. Prefer `${file:/run/secrets/...}` or the `_FILE` variable to writing it here.');

const authorizationParams = z
  .record(z.string(), z.string())
  .default({})
  .describe(
    "Extra parameters sent on the upstream authorization request (for example `prompt`, `login`, `allow_signup`). The gateway's own parameters (client_id, redirect_uri, state, PKCE, scope...) cannot be replaced.",
  );

export const githubProviderSchema = z.object({
  type: z.literal('github').describe('GitHub or GitHub Enterprise Server, through an OAuth app or a GitHub App (user access tokens).'),
  id: providerId('github'),
  displayName: z.string().default('GitHub').describe('Name shown to users.'),
  clientId: z.string().min(1).describe('Client ID of the OAuth app or GitHub App (`Iv1.…`/`Iv23…` for GitHub Apps).'),
  clientSecret,
  baseUrl: endpointUrl
    .default('https://github.com')
    .describe(
      'Web address of GitHub: `https://github.com`, or your GitHub Enterprise Server such as `https://ghe.example.com`. The OAuth endpoints are `<baseUrl>/login/oauth/authorize` and `/login/oauth/access_token`.',
    ),
  apiUrl: endpointUrl
    .optional()
    .describe('REST API base URL. Default: `https://api.github.com` for github.com, `<baseUrl>/api/v3` for GitHub Enterprise Server.'),
  scopes: z
    .array(z.string())
    .optional()
    .describe(
      'OAuth app scopes. Default: `read:user user:email`, plus `read:org` when organisations are fetched. GitHub Apps ignore scopes: give the app the "Email addresses" and "Members" (organisation) read permissions instead.',
    ),
  fetchOrganizations: z
    .boolean()
    .optional()
    .describe(
      "Read the user's organisations and teams at sign-in (`GET /user/orgs`, `/user/teams`; needs `read:org`) for `githubOrgs`/`githubTeams` access rules. Default: on when any access rule uses them.",
    ),
  authorizationParams,
});

const claimPath = z.string().regex(/^[^.\s]+(\.[^.\s]+)*$/, 'a dot path such as `sub` or `data.attributes.email`');

export const oauth2ProviderSchema = z.object({
  type: z.literal('oauth2').describe('Any OAuth 2 provider without OpenID Connect: explicit endpoints, a userinfo URL and claim mapping.'),
  id: providerId('oauth2'),
  displayName: z.string().default('Single sign-on').describe('Name shown to users.'),
  authorizationUrl: endpointUrl.describe('Authorization endpoint the browser is sent to.'),
  tokenUrl: endpointUrl.describe('Token endpoint (JSON or form-encoded answers are both understood).'),
  userinfoUrl: endpointUrl.describe('URL answering `GET` with `Authorization: Bearer <access token>` and a JSON object describing the user.'),
  clientId: z.string().min(1).describe("Client ID of the gateway's registration at the provider."),
  clientSecret: clientSecret
    .optional()
    .describe('Client secret of that registration; omit for a public client (`tokenEndpointAuthMethod: none`). Prefer `${file:/run/secrets/...}`.'),
  tokenEndpointAuthMethod: z
    .enum(['client_secret_basic', 'client_secret_post', 'none'])
    .optional()
    .describe('How the gateway authenticates at the token endpoint. Default: `client_secret_basic` with a secret, `none` without.'),
  scopes: z.array(z.string()).default([]).describe('Scopes requested (space-separated on the request).'),
  pkce: z.boolean().default(true).describe('Send a PKCE S256 challenge (RFC 7636). Turn off only for a provider that rejects it.'),
  claims: z
    .object({
      subject: claimPath
        .default('sub')
        .describe('Path of the stable, unique user id (numbers are turned into text). Never a name or email the user can change.'),
      email: claimPath.default('email').describe('Path of the email address.'),
      emailVerified: claimPath
        .optional()
        .describe(
          'Path of a boolean saying the email is verified. Without it the email is treated as unverified (email and domain access rules will not match).',
        ),
      name: claimPath.default('name').describe('Path of the display name.'),
      groups: claimPath.default('groups').describe('Path of the groups: an array of strings (or of objects with a `name`), or one comma-separated string.'),
    })
    .default({ subject: 'sub', email: 'email', name: 'name', groups: 'groups' })
    .describe('Where each part of the identity is found in the userinfo JSON, as dot paths.'),
  authorizationParams,
});

export type GithubProviderConfig = z.output<typeof githubProviderSchema>;
export type OAuth2ProviderConfig = z.output<typeof oauth2ProviderSchema>;
