/**
 * Normalises client metadata from Dynamic Client Registration bodies and Client ID Metadata Documents
 * before oidc-provider validates it, so real MCP clients' registrations succeed:
 *
 * - `application_type` becomes `native` when a redirect URI is loopback or a private-use scheme;
 *   oidc-provider only accepts private-use schemes for native clients, and Cursor registers
 *   `cursor://…`, an https URI and a loopback URI in one request.
 * - `grant_types` always includes `refresh_token`: MCP clients are long-lived and the gateway's access
 *   tokens are short (RFC 7591 §3.2.1 lets the server replace requested metadata).
 * - `scope` keeps only scopes this server knows; unknown ones are dropped rather than failing the whole
 *   registration (RFC 7591 §2: the server may reject or replace them).
 * - CIMD documents that omit `token_endpoint_auth_method` are public clients (`none`), since a CIMD
 *   client cannot hold a shared secret (draft-ietf-oauth-client-id-metadata-document §4).
 * - `sector_identifier_uri` is dropped: it only serves pairwise subject identifiers, which the gateway
 *   does not issue, and oidc-provider fetches it while validating the client, so an unauthenticated
 *   registration (or a CIMD document) could otherwise make the gateway send a GET to any URL.
 *
 * Redirect URI schemes are checked here too, with an RFC 7591 error naming the offending URI.
 */
import { OAuthError } from '../http/errors.ts';
import { classifyRedirectUri } from './redirect-uris.ts';

export interface NormaliseOptions {
  knownScopes: ReadonlySet<string>;
  source: 'registration' | 'metadata-document';
}

type Metadata = Record<string, unknown>;

export function normaliseClientMetadata(input: unknown, options: NormaliseOptions): Metadata {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new OAuthError('invalid_client_metadata', 'client metadata must be a JSON object');
  }
  const metadata: Metadata = { ...(input as Metadata) };
  delete metadata.sector_identifier_uri;

  const redirectUris = metadata.redirect_uris;
  if (!Array.isArray(redirectUris) || redirectUris.length === 0 || !redirectUris.every((uri) => typeof uri === 'string')) {
    throw new OAuthError('invalid_redirect_uri', 'redirect_uris must be a non-empty array of strings');
  }
  let needsNative = false;
  for (const uri of redirectUris as string[]) {
    const verdict = classifyRedirectUri(uri);
    if ('error' in verdict) throw new OAuthError('invalid_redirect_uri', `redirect_uris: ${verdict.error}`);
    if (verdict.kind !== 'https') needsNative = true;
  }
  if (needsNative) metadata.application_type = 'native';

  const grantTypes = Array.isArray(metadata.grant_types) ? (metadata.grant_types as unknown[]) : ['authorization_code'];
  if (grantTypes.includes('authorization_code') && !grantTypes.includes('refresh_token')) {
    metadata.grant_types = [...grantTypes, 'refresh_token'];
  }

  if (typeof metadata.scope === 'string') {
    const kept = metadata.scope.split(' ').filter((scope) => options.knownScopes.has(scope));
    if (kept.length > 0) metadata.scope = kept.join(' ');
    else delete metadata.scope;
  } else if (metadata.scope !== undefined) {
    delete metadata.scope;
  }

  if (options.source === 'metadata-document' && metadata.token_endpoint_auth_method === undefined) {
    metadata.token_endpoint_auth_method = 'none';
  }
  return metadata;
}
