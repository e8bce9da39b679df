/**
 * Okta. The issuer is the org authorization server (`https://<org>.okta.com`) or a custom one
 * (`…/oauth2/default`); a custom server's tokens are audience-bound and it ignores `resource`
 * (docs/identity-providers.md), so the gateway never sends it. Refresh tokens need `offline_access` and the grant
 * enabled on the app. Groups arrive in `groups` once a groups claim (or the org server's `groups`
 * scope) is set up.
 */
import type { OktaProviderConfig } from '../../config/schema/providers-oidc.ts';
import { STANDARD_CLAIMS } from '../claims.ts';
import type { OidcSettings } from '../oidc-settings.ts';
import { commonSettings } from './common.ts';

export function oktaSettings(config: OktaProviderConfig): OidcSettings {
  return commonSettings(config, config.issuer.replace(/\/+$/, ''), STANDARD_CLAIMS);
}
