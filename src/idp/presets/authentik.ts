/**
 * authentik: one issuer per application, `<baseUrl>/application/o/<slug>/` (trailing slash included).
 * Its default `profile` scope mapping puts the user's group names in `groups`.
 */
import type { AuthentikProviderConfig } from '../../config/schema/providers-oidc.ts';
import { STANDARD_CLAIMS } from '../claims.ts';
import type { OidcSettings } from '../oidc-settings.ts';
import { commonSettings, joinUrl } from './common.ts';

export function authentikIssuer(baseUrl: string, slug: string): string {
  return joinUrl(baseUrl, `application/o/${slug}/`);
}

export function authentikSettings(config: AuthentikProviderConfig): OidcSettings {
  return commonSettings(config, authentikIssuer(config.baseUrl, config.slug), STANDARD_CLAIMS);
}
