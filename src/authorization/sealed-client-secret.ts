/**
 * Confidential clients' secrets at rest (docs/tokens.md, "Tokens at rest"): sealed with the gateway's
 * SecretBox in the stored Client record, and opened when oidc-provider reads the client.
 *
 * Sealed rather than hashed: oidc-provider compares the secret itself (`Client#compareClientSecret`)
 * and, for `client_secret_jwt` or HS256-signed responses, uses it as an HMAC key, so it needs the
 * plaintext back. The seal is bound to the client id (associated data), so a sealed secret copied into
 * another client's record does not open there.
 */
import type { AdapterPayload } from 'oidc-provider';
import type { SecretBox } from '../storage/secret-box.ts';

/** The stored field; the plaintext `client_secret` is never written. */
const SEALED_FIELD = 'client_secret_sealed';

function associatedData(payload: AdapterPayload): string {
  return `oidc:Client:${String(payload.client_id)}`;
}

/** True for a Client record that holds its secret in plaintext (written before secrets were sealed). */
export function hasPlainClientSecret(payload: AdapterPayload): boolean {
  return typeof payload.client_secret === 'string';
}

/** True for a Client record whose secret was sealed with a key other than the current one (docs: README, "Rotating the encryption key"). */
export function sealedWithOldKey(box: SecretBox, payload: AdapterPayload): boolean {
  const sealed = payload[SEALED_FIELD];
  return typeof sealed === 'string' && box.needsRotation(sealed);
}

/** The record to store: `client_secret` replaced by its sealed form. */
export function sealClientSecret(box: SecretBox, payload: AdapterPayload): AdapterPayload {
  if (!hasPlainClientSecret(payload)) return payload;
  const { client_secret: secret, ...rest } = payload;
  return { ...rest, [SEALED_FIELD]: box.seal(String(secret), associatedData(payload)) };
}

/**
 * The record oidc-provider reads: the secret opened again. A record still holding a plaintext secret is
 * returned as it is, so clients registered by an older gateway keep working until the start-up
 * migration seals them (src/authorization/at-rest-migration.ts).
 */
export function openClientSecret(box: SecretBox, payload: AdapterPayload): AdapterPayload {
  const sealed = payload[SEALED_FIELD];
  if (typeof sealed !== 'string') return payload;
  const { [SEALED_FIELD]: _sealed, ...rest } = payload;
  return { ...rest, client_secret: box.open(sealed, associatedData(payload)) };
}
