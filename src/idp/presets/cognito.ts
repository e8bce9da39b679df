/**
 * Amazon Cognito user pools: the issuer is `https://cognito-idp.<region>.amazonaws.com/<userPoolId>`,
 * groups arrive in `cognito:groups`, and `email_verified` may be the string "true" (handled by the
 * claim mapping). Cognito gives a refresh token with every code grant; `offline_access` is not one of
 * its scopes.
 */

import { cognitoProblems } from '../../config/schema/identity-provider-rules.ts';
import type { CognitoProviderConfig } from '../../config/schema/providers-oidc.ts';
import { STANDARD_CLAIMS } from '../claims.ts';
import { refuseProblems } from '../config-error.ts';
import type { OidcSettings } from '../oidc-settings.ts';
import { commonSettings } from './common.ts';

export function cognitoIssuer(config: Pick<CognitoProviderConfig, 'region' | 'userPoolId' | 'issuer' | 'id'>): string {
  refuseProblems(config.id, cognitoProblems(config));
  if (config.issuer) return config.issuer.replace(/\/+$/, '');
  return `https://cognito-idp.${config.region}.amazonaws.com/${config.userPoolId}`;
}

export function cognitoSettings(config: CognitoProviderConfig): OidcSettings {
  return commonSettings(config, cognitoIssuer(config), { ...STANDARD_CLAIMS, groups: ['cognito:groups'], name: ['name', 'cognito:username'] });
}
