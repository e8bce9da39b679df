/**
 * Which of oidc-provider's models are keyed by a bearer credential, and how such a model is stored so
 * that a copy of the store (a backup, a stolen SQLite file, a Redis dump) redeems nothing
 * (docs/tokens.md, "Tokens at rest"; RFC 9700 §4.14 treats refresh tokens as credentials to protect).
 *
 * For these models oidc-provider's id IS the credential: the refresh token, the authorization code, the
 * device code a client polls with. The adapter stores them under `sha256.<SHA-256 of the id>` and drops
 * the id (`jti`) from the stored payload; `find(id)` is handed the credential, hashes it to look the row
 * up, and puts `jti` back. Every secondary index (grant index, consumed markers) holds the stored key,
 * never the credential.
 *
 * Why a plain SHA-256 and not an HMAC under a gateway key: the ids are 256 random bits (oidc-provider's
 * `formats.bitsOfOpaqueRandomness` default), so neither guessing nor a dictionary can find a preimage of
 * a stored hash; a key would add nothing for such inputs, while it would tie every stored token to the
 * encryption keys (a key rotation would orphan them, and every replica would need the same key before
 * it could find a token).
 */
import { createHash } from 'node:crypto';

/**
 * The models whose id is a bearer credential: presenting the id (alone, or with a public client's
 * client_id) to an endpoint yields tokens or access. Access tokens and client credentials are stored
 * only when opaque (the gateway issues JWTs, which oidc-provider never stores); device codes and CIBA
 * requests only when those flows are enabled; registration and initial access tokens authorise client
 * management. Sessions and interactions are not here: they are ten-minute browser state usable only
 * with cookies signed by the gateway's cookie keys (sealed at rest), and an interaction's id travels in
 * its URL anyway.
 */
export const CREDENTIAL_MODELS: ReadonlySet<string> = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'ClientCredentials',
  'InitialAccessToken',
  'RegistrationAccessToken',
]);

/** `.` is outside the alphabet of oidc-provider's ids (base64url), so a hashed key never equals a stored credential. */
const HASHED_PREFIX = 'sha256.';

/** The key a model's row is stored under: the hash of the id for credential models, the id itself otherwise. */
export function storedKey(model: string, id: string): string {
  return CREDENTIAL_MODELS.has(model) ? hashedKey(id) : id;
}

export function hashedKey(id: string): string {
  return HASHED_PREFIX + createHash('sha256').update(id, 'utf8').digest('base64url');
}

/** True for a key written by `storedKey` for a credential model; false for a credential stored as itself (older gateways). */
export function isHashedKey(key: string): boolean {
  return key.startsWith(HASHED_PREFIX);
}

/** The payload as stored: without the credential, which oidc-provider also keeps in `jti`. */
export function withoutCredential<T extends { jti?: unknown }>(model: string, payload: T): T {
  if (!CREDENTIAL_MODELS.has(model) || !('jti' in payload)) return payload;
  const { jti: _credential, ...rest } = payload;
  return rest as T;
}

/** The payload as oidc-provider expects it back: `jti` is the credential it looked the row up with. */
export function withCredential<T extends { jti?: unknown }>(model: string, id: string, payload: T): T {
  return CREDENTIAL_MODELS.has(model) ? { ...payload, jti: id } : payload;
}

/** The adapter's storage namespaces, shared with the start-up migration (src/authorization/at-rest-migration.ts). */
export const ADAPTER_NS = {
  model: (model: string) => `oidc:${model}`,
  /** grant id -> `<model>:<stored key>` of every token of that grant, for revocation by grant. */
  grantTokens: 'oidc:grant-tokens',
  /** The grant index of older gateways, whose members named credentials in plaintext; only the migration reads it. */
  legacyGrantIndex: 'oidc:grant-index',
  /** `<model>:<stored key>` -> redemption count, the atomic single-use claim. */
  consumed: 'oidc:consumed',
  sessionUid: 'oidc:session-uid',
  /** user code -> the device code, sealed (the device code is a credential). */
  userCode: 'oidc:user-code',
} as const;
