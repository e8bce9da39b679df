/**
 * `type: oidc`: any OpenID Connect provider, by its issuer, with the standard claims (OIDC Core §5.1).
 */
import type { OidcProviderConfig } from '../../config/schema/providers-oidc.ts';
import { STANDARD_CLAIMS } from '../claims.ts';
import type { OidcSettings } from '../oidc-settings.ts';
import { commonSettings } from './common.ts';

export function genericOidcSettings(config: OidcProviderConfig): OidcSettings {
  return commonSettings(config, config.issuer, STANDARD_CLAIMS);
}
