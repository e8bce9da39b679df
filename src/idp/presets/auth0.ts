/**
 * Auth0: the issuer is `https://<domain>/` with its trailing slash (the ID token's `iss` has it, and
 * the comparison is exact). Without `audience` Auth0 issues an opaque access token for its own
 * userinfo only; with it, a JWT for that API. Groups or roles come from a namespaced custom claim set
 * by an Action (`claims.groups: https://example.com/roles`).
 */

import { auth0Problems } from '../../config/schema/identity-provider-rules.ts';
import type { Auth0ProviderConfig } from '../../config/schema/providers-oidc.ts';
import { STANDARD_CLAIMS } from '../claims.ts';
import { refuseProblems } from '../config-error.ts';
import type { OidcSettings } from '../oidc-settings.ts';
import { commonSettings } from './common.ts';

export function auth0Issuer(config: Pick<Auth0ProviderConfig, 'domain' | 'issuer' | 'id'>): string {
  refuseProblems(config.id, auth0Problems(config));
  if (config.issuer) return config.issuer.endsWith('/') ? config.issuer : `${config.issuer}/`;
  return `https://${config.domain}/`;
}

export function auth0Settings(config: Auth0ProviderConfig): OidcSettings {
  const settings = commonSettings(config, auth0Issuer(config), STANDARD_CLAIMS);
  if (config.audience) settings.presetParams = { audience: config.audience };
  return settings;
}
