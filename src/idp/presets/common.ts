/**
 * The part of every OIDC preset that is the same: identity keys, client, operator parameters, claim
 * overrides and clock tolerance, from the keys every OIDC-based provider type shares.
 */
import type { ClaimsMappingConfig } from '../../config/schema/providers-oidc.ts';
import { type ClaimMapping, resolveClaimMapping } from '../claims.ts';
import type { OidcSettings } from '../oidc-settings.ts';

/** The keys every OIDC-based provider type has (src/config/schema/providers-oidc.ts). */
export interface CommonOidcConfig {
  type: string;
  id: string;
  displayName: string;
  clientId: string;
  clientSecret?: string | undefined;
  scopes: string[];
  authorizationParams: Record<string, string>;
  claims: ClaimsMappingConfig;
  clockTolerance: number;
}

/** Settings from the shared keys; the preset adds or replaces what its IdP needs. */
export function commonSettings(config: CommonOidcConfig, issuer: string, defaultClaims: ClaimMapping): OidcSettings {
  return {
    type: config.type,
    id: config.id,
    displayName: config.displayName,
    issuer,
    clientId: config.clientId,
    clientSecret: config.clientSecret,
    scopes: config.scopes,
    presetParams: {},
    operatorParams: config.authorizationParams,
    useUserinfo: true,
    claims: resolveClaimMapping(defaultClaims, config.claims),
    clockTolerance: config.clockTolerance,
  };
}

/** `base` + `path` with exactly one slash between them (base URLs are written with and without one). */
export function joinUrl(base: string, path: string): string {
  return `${base.replace(/\/+$/, '')}/${path.replace(/^\/+/, '')}`;
}
