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

const SECRET_KEYS: ReadonlySet<string> = new Set(REDACTED_KEYS);
const CENSOR = '[redacted]';

/**
 * Secrets censored by key: at the top level, one level down, and inside request headers one level
 * down (`{ req: { headers: { authorization } } }`). A copy is made only where something is censored;
 * the caller's object is never changed. This replaces pino's `redact` option with the same reach: its
 * 57 paths (three per key) ran for every field of every line, about 60 µs a line against 4 µs for the
 * line itself, and every refresh logs one (`token.issued`).
 */
export function censorSecrets<T extends object>(record: T): T {
  let copy: Record<string, unknown> | undefined;
  for (const key of Object.keys(record)) {
    const value = (record as Record<string, unknown>)[key];
    let censored = value;
    if (SECRET_KEYS.has(key)) censored = CENSOR;
    // `err` is pino's error key: its serializer (below) censors what it serializes.
    else if (key !== 'err' && typeof value === 'object' && value !== null) censored = censorLevel(value as Record<string, unknown>, true);
    if (censored !== value) {
      copy ??= { ...(record as Record<string, unknown>) };
      copy[key] = censored;
    }
  }
  return (copy as T | undefined) ?? record;
}

/** One level: its secret keys censored, and those of its `headers` when `withHeaders`. An Error becomes what JSON shows of it. */
function censorLevel(value: Record<string, unknown>, withHeaders: boolean): Record<string, unknown> {
  if (Array.isArray(value)) return value;
  let copy: Record<string, unknown> | undefined;
  for (const key of Object.keys(value)) {
    const inner = value[key];
    let censored = inner;
    if (SECRET_KEYS.has(key)) censored = CENSOR;
    else if (withHeaders && key === 'headers' && typeof inner === 'object' && inner !== null) censored = censorLevel(inner as Record<string, unknown>, false);
    if (censored !== inner) {
      copy ??= { ...value };
      copy[key] = censored;
    }
  }
  return copy ?? value;
}

/** The serialized error's own fields (`{ type, message, stack, ... }`) censored like any other level. */
export function censorSerializedError(serialized: unknown): unknown {
  return typeof serialized === 'object' && serialized !== null ? censorLevel(serialized as Record<string, unknown>, true) : serialized;
}
