/**
 * The rule for one `secrets.encryptionKeys` entry: secrets at rest are sealed with AES-256-GCM, whose
 * key is 256 bits (NIST SP 800-38D with AES-256), written as base64. Exported so the storage code that
 * decodes the keys can apply the same rule.
 */

export const ENCRYPTION_KEY_BYTES = 32;

/** What is wrong with a configured key, or undefined when it decodes to exactly 32 bytes. */
export function encryptionKeyProblem(encoded: string): string | undefined {
  if (Buffer.from(encoded, 'base64').length === ENCRYPTION_KEY_BYTES) return undefined;
  return `must be ${ENCRYPTION_KEY_BYTES} bytes, base64-encoded (openssl rand -base64 32)`;
}
