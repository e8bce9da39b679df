/**
 * The keys whose values never reach a log line, operational or audit: credentials of every kind.
 * Shared by logger.ts and audit.ts (which also applies them to audited tool arguments).
 */
export const REDACTED_KEYS: readonly string[] = [
  'authorization',
  'cookie',
  'set-cookie',
  'password',
  'passwordHash',
  'client_secret',
  'clientSecret',
  'access_token',
  'accessToken',
  'refresh_token',
  'refreshToken',
  'id_token',
  'idToken',
  'code_verifier',
  'codeVerifier',
  'encryptionKeys',
  'cookieSecret',
  'token',
];
// Not `code`: that key carries error codes (ECONNREFUSED, UND_ERR_HEADERS_TIMEOUT) operators need, and
// authorization codes are never logged under any key.

/** Redaction paths: the key at the top level, one level down, and inside request headers. */
export const REDACT_PATHS: readonly string[] = [
  ...REDACTED_KEYS.map((key) => `["${key}"]`),
  ...REDACTED_KEYS.map((key) => `*["${key}"]`),
  ...REDACTED_KEYS.map((key) => `*.headers["${key}"]`),
];
