/**
 * Access tokens shaped like the ones the authorization server issues (RFC 9068 `at+jwt`, ES256, five
 * minutes), signed with a test key, for resource-server and proxy tests that run without a login.
 * The test publishes the matching public key as the gateway's JWKS.
 *
 *   const jwt = await signAccessToken(privateKey, { issuer, audience: `${issuer}/mcp`, subject: 'local:alice', clientId: 'c1', scope: 'mcp', kid: 'k' });
 */
import type { CryptoKey } from 'jose';
import { SignJWT } from 'jose';

export interface AccessTokenClaims {
  issuer: string;
  /** The MCP server's URL the token is for. */
  audience: string;
  /** The gateway's user id. */
  subject: string;
  clientId: string;
  scope: string;
  /** The `kid` of the key in the test JWKS. */
  kid: string;
  /** The grant the token belongs to (`grant_id`), which revocation is keyed by. */
  grantId?: string;
  /** Seconds until it expires; five minutes by default. */
  lifetimeSeconds?: number;
}

export async function signAccessToken(privateKey: CryptoKey, claims: AccessTokenClaims): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ client_id: claims.clientId, scope: claims.scope, ...(claims.grantId ? { grant_id: claims.grantId } : {}) })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: claims.kid })
    .setIssuer(claims.issuer)
    .setAudience(claims.audience)
    .setSubject(claims.subject)
    .setIssuedAt(now)
    .setExpirationTime(now + (claims.lifetimeSeconds ?? 300))
    .sign(privateKey);
}
