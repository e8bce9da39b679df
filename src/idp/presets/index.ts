/**
 * One OidcIdentityProvider per OIDC-based `type`, each from its preset's settings.
 */
import type { OidcFamilyConfig } from '../../config/schema/providers-oidc.ts';
import { OidcIdentityProvider, type OidcIdentityProviderOptions } from '../oidc.ts';
import type { OidcSettings } from '../oidc-settings.ts';
import { auth0Settings } from './auth0.ts';
import { authentikSettings } from './authentik.ts';
import { cognitoSettings } from './cognito.ts';
import { entraSettings } from './entra.ts';
import { genericOidcSettings } from './generic.ts';
import { googleSettings } from './google.ts';
import { keycloakSettings } from './keycloak.ts';
import { oktaSettings } from './okta.ts';

/** The `type` values served by OidcIdentityProvider (one list, shared with the configuration rules). */
export { OIDC_PROVIDER_TYPES as OIDC_TYPES } from '../../config/schema/identity-provider-rules.ts';

export function oidcSettingsFor(config: OidcFamilyConfig): OidcSettings {
  switch (config.type) {
    case 'oidc':
      return genericOidcSettings(config);
    case 'entra':
      return entraSettings(config);
    case 'google':
      return googleSettings(config);
    case 'okta':
      return oktaSettings(config);
    case 'keycloak':
      return keycloakSettings(config);
    case 'auth0':
      return auth0Settings(config);
    case 'authentik':
      return authentikSettings(config);
    case 'cognito':
      return cognitoSettings(config);
  }
}

/** The provider for one configured OIDC-based entry; throws IdpConfigError (ERR_IDP_CONFIG_INVALID) for a bad configuration. */
export function createOidcProvider(config: OidcFamilyConfig, options: OidcIdentityProviderOptions = {}): OidcIdentityProvider {
  return new OidcIdentityProvider(oidcSettingsFor(config), options);
}
