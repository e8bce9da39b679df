/**
 * Entra groups overage: over 200 groups (6 in implicit flows) the ID token lists none and carries
 * `_claim_names: { groups: "src1" }` (or `hasgroups: true`) instead. The groups are then read from
 * Microsoft Graph, `GET /v1.0/me/transitiveMemberOf/microsoft.graph.group` (nested groups included, as
 * the groups claim has them), with the user's access token: this needs the delegated
 * `GroupMember.Read.All` permission and a Graph access token, i.e. no `api://` scope in the request.
 */

import { readCappedResponse } from '../../http/body.ts';
import type { GroupsContext } from '../oidc-settings.ts';
import { IdpLoginError, type IdpTokens } from '../types.ts';

/** Pages followed at most: 999 groups per page, so ~20,000 groups. */
const MAX_PAGES = 20;

/** True when the ID token says its groups claim is incomplete. */
export function hasGroupsOverage(claims: Record<string, unknown>): boolean {
  const names = claims._claim_names;
  if (names instanceof Object && 'groups' in names) return true;
  return claims.hasgroups === true || claims.hasgroups === 'true';
}

export function graphGroupsResolver(options: { enabled: boolean; graphUrl: string }) {
  return async (claims: Record<string, unknown>, tokens: IdpTokens, context: GroupsContext): Promise<string[] | undefined> => {
    if (!hasGroupsOverage(claims)) return undefined;
    if (!options.enabled) {
      context.warn(
        { event: 'login.groups_overage' },
        'the user has more groups than the ID token can list; set graphGroups: true to read them from Microsoft Graph (groups rules will not see them)',
      );
      return undefined;
    }
    if (!tokens.accessToken)
      throw new IdpLoginError(
        'server_error',
        'The groups of this account could not be read.',
        'groups overage, and no access token to call Microsoft Graph with',
      );
    return readGroups(options.graphUrl, tokens.accessToken, context.fetch);
  };
}

async function readGroups(graphUrl: string, accessToken: string, outbound: typeof fetch): Promise<string[]> {
  const base = new URL(graphUrl);
  let next: URL | undefined = new URL(`${base.pathname.replace(/\/+$/, '')}/v1.0/me/transitiveMemberOf/microsoft.graph.group?$select=id&$top=999`, base);
  const groups: string[] = [];
  for (let page = 0; next && page < MAX_PAGES; page++) {
    let response: Response;
    try {
      response = await outbound(next, { headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json' }, redirect: 'manual' });
    } catch (error) {
      throw new IdpLoginError(
        'temporarily_unavailable',
        'Microsoft Graph is unavailable.',
        `Graph groups request failed: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
    if (response.status >= 500 || response.status === 429) {
      throw new IdpLoginError('temporarily_unavailable', 'Microsoft Graph is unavailable.', `Graph groups request answered ${response.status}`);
    }
    if (!response.ok) {
      // Only its start goes into the message, so a hostile or broken answer is not read past 16 KiB.
      const body = (await readCappedResponse(response.body, 16 * 1024).catch(() => Buffer.from('(body unreadable or over 16 KiB)')))
        .toString('utf8')
        .slice(0, 300);
      throw new IdpLoginError(
        'server_error',
        'The groups of this account could not be read.',
        `Graph groups request answered ${response.status} (the access token must be a Graph token with GroupMember.Read.All): ${body}`,
      );
    }
    const body = (await response.json()) as { value?: unknown; '@odata.nextLink'?: unknown };
    if (Array.isArray(body.value)) {
      for (const item of body.value) {
        if (item instanceof Object && typeof (item as { id?: unknown }).id === 'string') groups.push((item as { id: string }).id);
      }
    }
    const link = typeof body['@odata.nextLink'] === 'string' ? URL.parse(body['@odata.nextLink']) : null;
    // The bearer token goes only to the configured Graph origin, whatever a response links to.
    next = link && link.origin === base.origin ? link : undefined;
  }
  return groups;
}
