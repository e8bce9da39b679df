/**
 * Google. No `offline_access` scope: a refresh token comes only with `access_type=offline`, and only
 * on a consent prompt (`prompt=consent`), otherwise only at the user's first consent (docs/identity-providers.md).
 * Access tokens are opaque, so the identity comes from the ID token alone. A Google Workspace account
 * carries its domain in `hd`; `hostedDomain` makes it a requirement (the `hd` request parameter is
 * only a hint for the account chooser and proves nothing).
 */
import type { GoogleProviderConfig } from '../../config/schema/providers-oidc.ts';
import { STANDARD_CLAIMS } from '../claims.ts';
import type { OidcSettings } from '../oidc-settings.ts';
import { commonSettings } from './common.ts';

export function googleSettings(config: GoogleProviderConfig): OidcSettings {
  const settings = commonSettings(config, config.issuer.replace(/\/+$/, ''), { ...STANDARD_CLAIMS, groups: [] });
  settings.useUserinfo = false;
  settings.presetParams = { access_type: 'offline', prompt: 'consent' };
  const domain = config.hostedDomain?.toLowerCase();
  if (domain) {
    settings.presetParams.hd = domain;
    settings.checkClaims = (claims) => {
      const hd = typeof claims.hd === 'string' ? claims.hd.toLowerCase() : undefined;
      if (hd === domain) return undefined;
      return {
        reason: hd
          ? `Google Workspace domain (hd) ${hd} is not hostedDomain ${domain}`
          : `the account has no Google Workspace domain (hd); hostedDomain ${domain} is required`,
      };
    };
  }
  return settings;
}
