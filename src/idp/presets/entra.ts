/**
 * Microsoft Entra ID (v2.0 endpoints).
 *
 * - Issuer `<authority>/<tenant>/v2.0`. With `common`/`organizations` the discovery document names the
 *   template `…/{tenantid}/v2.0` and each ID token's `iss` names the user's tenant; the token's `tid`
 *   must then be one of `allowedTenants` (else anyone with any work account could sign in).
 * - Scopes: `openid profile email offline_access` plus at most one API's scopes, fully qualified
 *   (`api://<app>/<scope>` or `<resource>/.default`): an unqualified scope means Microsoft Graph, and
 *   scopes of two resources in one request are refused (AADSTS28000). Never a `resource` parameter:
 *   together with `scope` it fails with AADSTS9010010.
 * - Subject: `oid`, the user's object id, the same for every app in the tenant and never reassigned,
 *   rather than `sub`, which is pairwise per application (a second app registration, or a move to
 *   another app, would make every user new). `tid` goes with it into the identity.
 * - Email: `email` is an optional claim and not verified by Entra in general; it counts as verified only
 *   with `xms_edov` (email domain owner verified, an optional claim to add to the token configuration).
 * - Groups: group object ids (`groups`) and app role values (`roles`), merged. Over 200 groups the ID
 *   token carries an overage marker instead (`_claim_names.groups` / `hasgroups`); with `graphGroups`
 *   they are read from Microsoft Graph (./entra-graph.ts).
 * - Userinfo is a Graph endpoint that an `api://` access token cannot call: the ID token is the identity.
 */

import { entraProblems } from '../../config/schema/identity-provider-rules.ts';
import type { EntraProviderConfig } from '../../config/schema/providers-oidc.ts';
import { STANDARD_CLAIMS } from '../claims.ts';
import { refuseProblems } from '../config-error.ts';
import type { OidcSettings } from '../oidc-settings.ts';
import { commonSettings, joinUrl } from './common.ts';
import { graphGroupsResolver } from './entra-graph.ts';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function entraSettings(config: EntraProviderConfig): OidcSettings {
  // The schema's rules (they need the tenant and scopes, which only this preset has); the generic
  // ones (openid, reserved parameters) are checked by the provider itself.
  refuseProblems(config.id, entraProblems(config));
  const tenant = config.tenant.toLowerCase();
  const issuer = joinUrl(config.authority, `${tenant}/v2.0`);
  const settings = commonSettings(config, issuer, {
    ...STANDARD_CLAIMS,
    subject: 'oid',
    emailVerified: 'xms_edov',
    groups: ['groups', 'roles'],
  });
  settings.entraAuthority = issuer;
  settings.useUserinfo = false;
  // Entra's refresh request takes the scopes again (v2.0 token endpoint), for the same single resource.
  settings.refreshParams = { scope: config.scopes.join(' ') };

  const allowed = new Set(config.allowedTenants.map((value) => value.toLowerCase()));
  if (allowed.size === 0 && GUID.test(tenant)) allowed.add(tenant);
  if (!allowed.has('*') && allowed.size > 0) {
    settings.checkClaims = (claims) => {
      const tid = typeof claims.tid === 'string' ? claims.tid.toLowerCase() : undefined;
      if (tid && allowed.has(tid)) return undefined;
      return { reason: tid ? `Entra tenant (tid) ${tid} is not in allowedTenants` : 'the ID token has no tid claim to check against allowedTenants' };
    };
  }
  settings.resolveGroups = graphGroupsResolver({ enabled: config.graphGroups, graphUrl: config.graphUrl });
  return settings;
}
