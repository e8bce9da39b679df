/**
 * Keycloak: the issuer is `<baseUrl>/realms/<realm>`. Groups arrive in `groups` once a "Group
 * Membership" mapper is added to the client's dedicated scope; there is no `aud` for other clients
 * without an audience mapper, which the gateway does not need (it checks the ID token, whose `aud` is
 * its own client id). PKCE is off by default in Keycloak, yet accepted: the gateway always sends S256.
 */
import type { KeycloakProviderConfig } from '../../config/schema/providers-oidc.ts';
import { STANDARD_CLAIMS } from '../claims.ts';
import type { OidcSettings } from '../oidc-settings.ts';
import { commonSettings, joinUrl } from './common.ts';

export function keycloakIssuer(baseUrl: string, realm: string): string {
  return joinUrl(baseUrl, `realms/${encodeURIComponent(realm)}`);
}

export function keycloakSettings(config: KeycloakProviderConfig): OidcSettings {
  return commonSettings(config, keycloakIssuer(config.baseUrl, config.realm), STANDARD_CLAIMS);
}
